//! `cargo xtask bench`: what netprobe costs the traffic it watches, measured in one run on
//! this machine, next to doing nothing and to the ad hoc alternative (bpftrace on classic
//! tracepoints). Results go to docs/benchmarks.md. A benchmark, not a test: it reports and
//! compares with the targets, it does not fail on them.

use std::{
    fmt::Write as _,
    fs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use netprobe_tests::{
    lab::{Background, Lab},
    netprobe::Running,
};

const ROUNDS: usize = 3;
const SECS: f64 = 3.0;
const UDP_PORT: &str = "7000";
const TCP_PORT: &str = "7001";
const CLOSED_PORT: &str = "7999";
/// Bursts included: they bin every packet the node's interfaces receive and send.
const EVERY_FAMILY: &str = "drops,tcp,ports,conntrack,softnet,bursts";

/// The bpftrace equivalent an SRE would write: the same hooks counted into maps, on classic
/// tracepoints (it has no tp_btf for these).
const BPFTRACE: &str = r#"
tracepoint:skb:kfree_skb { @drops[args->reason] = count(); }
tracepoint:tcp:tcp_retransmit_skb { @retrans = count(); }
tracepoint:tcp:tcp_retransmit_synack { @synack = count(); }
tracepoint:tcp:tcp_send_reset { @rst_tx = count(); }
tracepoint:tcp:tcp_receive_reset { @rst_rx = count(); }
tracepoint:syscalls:sys_exit_connect /args->ret == -99 || args->ret == -98/ { @connect[args->ret] = count(); }
tracepoint:syscalls:sys_exit_bind /args->ret == -99 || args->ret == -98/ { @bind[args->ret] = count(); }
tracepoint:irq:softirq_entry /args->vec == 3/ { @runs[cpu] = count(); }
tracepoint:napi:napi_poll { @packets[cpu] = sum(args->work); }
tracepoint:net:netif_receive_skb { @bins[str(args->name), (nsecs / 1000000) % 1024] = count(); }
tracepoint:net:net_dev_start_xmit { @tx_bins[str(args->name), (nsecs / 1000000) % 1024] = count(); }
"#;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bare,
    Netprobe,
    Bpftrace,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Bare => "no agent",
            Mode::Netprobe => "netprobe (every family)",
            Mode::Bpftrace => "bpftrace (same hooks)",
        }
    }
}

/// An agent running for one measurement.
enum Agent {
    None,
    Netprobe(Running),
    Bpftrace(Reaped),
}

/// A child process killed and waited for when dropped, so that no early return leaves
/// bpftrace or netprobe attached.
struct Reaped(Child);

impl Reaped {
    /// Ctrl-C, then waits for it to exit.
    fn interrupt(mut self) -> Result<()> {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        self.0.wait()?;
        Ok(())
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

struct Tools {
    netprobe: PathBuf,
    labtool: String,
}

pub fn run() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark creates network namespaces and loads BPF programs: run as root");
    }
    let tools = build()?;
    if Command::new("bpftrace").arg("--version").output().is_err() {
        println!("installing bpftrace (Debian) for the comparison");
        let ok =
            Command::new("apt-get").args(["install", "-y", "-q", "bpftrace"]).status()?.success();
        if !ok {
            bail!("apt-get install bpftrace failed; run apt-get update first");
        }
    }
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sinks: Vec<Background> = vec![
        lab.spawn("pod-b", &tools.labtool, &["udp-sink", UDP_PORT])?,
        lab.spawn("pod-b", &tools.labtool, &["sink", TCP_PORT])?,
    ];
    thread::sleep(Duration::from_millis(300));

    let modes = [Mode::Bare, Mode::Netprobe, Mode::Bpftrace];
    let mut udp: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut tcp: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    // Interleaved rounds, so that drift on a shared machine hits every mode alike.
    for round in 0..ROUNDS {
        for (i, &mode) in modes.iter().enumerate() {
            let agent = start(mode, &tools)?;
            udp[i].push(udp_pps(&lab, &tools)?);
            tcp[i].push(tcp_bps(&lab, &tools)?);
            stop(agent)?;
            println!(
                "round {}/{ROUNDS} {:<24} udp {:>9.0} pps  tcp {:>6.2} Gbit/s",
                round + 1,
                mode.name(),
                udp[i].last().unwrap(),
                tcp[i].last().unwrap() * 8.0 / 1e9
            );
        }
    }
    let bpf_cost = bpf_ns_per_packet(&lab, &tools)?;
    let events = event_rates(&lab, &tools)?;
    let watch = watch_cpu(&lab, &tools)?;
    println!("watch at 100k events/s: cpu {:.1}%", watch * 100.0);
    drop(lab);

    let report = render(&modes, &udp, &tcp, &events, watch, &bpf_cost)?;
    print!("{report}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.md");
    fs::write(path, report).context("writing docs/benchmarks.md")?;
    println!("written to docs/benchmarks.md");
    Ok(())
}

fn build() -> Result<Tools> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "netprobe", "-p", "netprobe-tests"])
        .args(["--bin", "netprobe", "--bin", "labtool"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let release = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release"));
    Ok(Tools {
        netprobe: release.join("netprobe"),
        labtool: release.join("labtool").display().to_string(),
    })
}

fn start(mode: Mode, tools: &Tools) -> Result<Agent> {
    Ok(match mode {
        Mode::Bare => Agent::None,
        Mode::Netprobe => Agent::Netprobe(Running::start_bin(
            &tools.netprobe,
            &["report", "--duration", "10m", "--events", EVERY_FAMILY, "--format", "json"],
        )?),
        Mode::Bpftrace => {
            let child = Command::new("bpftrace")
                .args(["-e", BPFTRACE])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting bpftrace")?;
            let child = Reaped(child);
            // It compiles and attaches in well under this; there is no readiness signal.
            thread::sleep(Duration::from_secs(3));
            Agent::Bpftrace(child)
        }
    })
}

fn stop(agent: Agent) -> Result<Option<String>> {
    match agent {
        Agent::None => Ok(None),
        Agent::Netprobe(np) => np.stop().map(Some),
        Agent::Bpftrace(child) => child.interrupt().map(|()| None),
    }
}

/// 18-byte UDP payloads (64-byte frames) from pod-a, pinned to CPU 0, into a socket in
/// pod-b: datagrams delivered per second.
fn udp_pps(lab: &Lab, tools: &Tools) -> Result<f64> {
    let before = lab.snmp("pod-b", "Udp", "InDatagrams")?;
    let b = lab.ip("pod-b");
    lab.sh_ok("pod-a", &format!("taskset -c 0 {} blast-for {b} {UDP_PORT} {SECS}", tools.labtool))?;
    Ok((lab.snmp("pod-b", "Udp", "InDatagrams")? - before) as f64 / SECS)
}

/// One TCP stream from pod-a to pod-b: bytes per second.
fn tcp_bps(lab: &Lab, tools: &Tools) -> Result<f64> {
    let b = lab.ip("pod-b");
    let out = lab.sh_ok("pod-a", &format!("{} stream {b} {TCP_PORT} {SECS}", tools.labtool))?;
    Ok(out.trim().parse::<f64>()? / SECS)
}

/// Drop events at a paced rate: what netprobe delivers and loses, and what it costs in
/// userspace CPU.
struct EventRun {
    rate: Option<u64>,
    /// The drops the kernel itself counted: the growth of pod-b's own `Udp NoPorts`.
    generated: u64,
    /// netprobe's exact count of them (pod-b's NO_SOCKET drops, per-CPU kernel maps).
    counted: u64,
    delivered: u64,
    lost: u64,
    cpu_fraction: f64,
    rss_kb: u64,
}

impl EventRun {
    /// The kernel's count, netprobe's exact count, and the samples delivered or counted lost
    /// all agree.
    fn balanced(&self) -> bool {
        self.counted == self.generated && self.delivered + self.lost == self.generated
    }
}

/// The kernel's own accounting of netprobe's programs (kernel.bpf_stats_enabled) over one
/// UDP round: nanoseconds each program spent per delivered packet, the cost with no noise
/// from the shared machine.
fn bpf_ns_per_packet(lab: &Lab, tools: &Tools) -> Result<Vec<(String, f64)>> {
    lab.set_sysctl("kernel.bpf_stats_enabled", "1")?;
    let agent = start(Mode::Netprobe, tools)?;
    let before = lab.snmp("pod-b", "Udp", "InDatagrams")?;
    let b = lab.ip("pod-b");
    lab.sh_ok("pod-a", &format!("taskset -c 0 {} blast-for {b} {UDP_PORT} {SECS}", tools.labtool))?;
    let packets = (lab.snmp("pod-b", "Udp", "InDatagrams")? - before).max(1) as f64;
    let out = Command::new("bpftool").args(["-j", "prog", "show"]).output().context("bpftool")?;
    stop(agent)?;
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut cost: Vec<(String, f64)> = progs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let ns = p["run_time_ns"].as_f64()?;
            Some((p["name"].as_str()?.to_owned(), ns / packets))
        })
        .filter(|(_, per)| *per >= 1.0)
        .collect();
    cost.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(cost)
}

/// `netprobe watch --events drops --format json > /dev/null` under 100k drop events/s: the
/// userspace CPU of decoding and printing every sample.
fn watch_cpu(lab: &Lab, tools: &Tools) -> Result<f64> {
    let child = Reaped(
        Command::new(&tools.netprobe)
            .args(["watch", "--events", "drops", "--format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // Attaching takes well under this; watch gives no readiness signal on stdout.
    thread::sleep(Duration::from_secs(2));
    let pid = child.0.id();
    let (before, started) = (cpu_ticks(pid)?, Instant::now());
    let b = lab.ip("pod-b");
    lab.sh_ok(
        "pod-a",
        &format!("taskset -c 0 {} blast-for {b} {CLOSED_PORT} {SECS} 100000", tools.labtool),
    )?;
    thread::sleep(Duration::from_millis(300));
    let cpu = (cpu_ticks(pid)? - before) as f64 / ticks_per_sec() / started.elapsed().as_secs_f64();
    child.interrupt()?;
    Ok(cpu)
}

fn event_rates(lab: &Lab, tools: &Tools) -> Result<Vec<EventRun>> {
    let mut runs = Vec::new();
    for rate in [Some(25_000), Some(50_000), Some(100_000), Some(200_000), None] {
        // Only pod-b's drops (filtered in the kernel): its samples are those of the blast.
        let np = Running::start_bin(
            &tools.netprobe,
            &[
                "report",
                "--duration",
                "10m",
                "--events",
                "drops",
                "--pod",
                "pod-b",
                "--format",
                "json",
            ],
        )?;
        let no_ports_before = lab.snmp("pod-b", "Udp", "NoPorts")?;
        let pid = np.pid();
        let cpu_before = cpu_ticks(pid)?;
        let started = Instant::now();
        let b = lab.ip("pod-b");
        let pace = rate.map(|r| r.to_string()).unwrap_or_default();
        lab.sh_ok(
            "pod-a",
            &format!("taskset -c 0 {} blast-for {b} {CLOSED_PORT} {SECS} {pace}", tools.labtool),
        )?;
        thread::sleep(Duration::from_millis(300));
        let cpu = (cpu_ticks(pid)? - cpu_before) as f64
            / ticks_per_sec()
            / started.elapsed().as_secs_f64();
        let rss_kb = status_kb(pid, "VmHWM:")?;
        let report: serde_json::Value = serde_json::from_str(&np.stop()?)?;
        let generated = lab.snmp("pod-b", "Udp", "NoPorts")? - no_ports_before;
        let field = |v: &serde_json::Value, what: &str| -> Result<u64> {
            v.as_u64().with_context(|| format!("the report has no {what}: {report:#}"))
        };
        let drops = report["drops"].as_array().context("the report has no drops")?;
        let mut counted = 0;
        for d in drops.iter().filter(|d| d["pod"] == "pod-b" && d["reason"] == "NO_SOCKET") {
            counted += field(&d["count"], "drop count")?;
        }
        let run = EventRun {
            rate,
            generated,
            counted,
            delivered: field(&report["samples"], "samples")?,
            lost: field(&report["health"]["lost_samples"], "health.lost_samples")?,
            cpu_fraction: cpu,
            rss_kb,
        };
        println!(
            "events at {:>8}/s: generated {} counted {} delivered {} lost {} cpu {:.1}% rss {} kB",
            rate.map_or("max".into(), |r| r.to_string()),
            run.generated,
            run.counted,
            run.delivered,
            run.lost,
            run.cpu_fraction * 100.0,
            run.rss_kb
        );
        runs.push(run);
    }
    Ok(runs)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may contain spaces), 1-based: utime is 14, stime 15.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn ticks_per_sec() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(key)).context("no such status line")?;
    Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
}

/// (max - min) / median of the rounds: how much a figure moved between rounds.
fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    (hi - lo) / median(v)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn render(
    modes: &[Mode],
    udp: &[Vec<f64>],
    tcp: &[Vec<f64>],
    events: &[EventRun],
    watch: f64,
    bpf_cost: &[(String, f64)],
) -> Result<String> {
    let mut s = String::new();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpu = fs::read_to_string("/proc/cpuinfo")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let ncpu = thread::available_parallelism()?.get();
    writeln!(s, "# netprobe benchmarks\n")?;
    writeln!(
        s,
        "Measured by `cargo xtask bench` in one run: {ncpu} vCPUs ({cpu}), kernel {}.",
        kernel.trim()
    )?;
    writeln!(
        s,
        "Ratios are what count: the machine is shared, so absolute numbers move from run to run.\n\
         Each figure is the median of {ROUNDS} interleaved rounds of {SECS} s. Traffic crosses a veth\n\
         pair and a bridge between two lab namespaces; the UDP sender is pinned to CPU 0.\n"
    )?;
    writeln!(s, "## Throughput\n")?;
    writeln!(
        s,
        "| agent | 64-byte UDP (pps) | ratio | added ns/packet | TCP stream (Gbit/s) | ratio | spread UDP / TCP |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|")?;
    let (u0, t0) = (median(&udp[0]), median(&tcp[0]));
    for (i, mode) in modes.iter().enumerate() {
        let (u, t) = (median(&udp[i]), median(&tcp[i]));
        let added =
            if i == 0 { "-".to_owned() } else { format!("{:.0}", (1.0 / u - 1.0 / u0) * 1e9) };
        writeln!(
            s,
            "| {} | {u:.0} | {:.3} | {added} | {:.2} | {:.3} | {:.0}% / {:.0}% |",
            mode.name(),
            u / u0,
            t * 8.0 / 1e9,
            t / t0,
            spread(&udp[i]) * 100.0,
            spread(&tcp[i]) * 100.0
        )?;
    }
    let total: f64 = bpf_cost.iter().map(|(_, ns)| ns).sum();
    writeln!(
        s,
        "\nBPF time per delivered UDP packet, as the kernel accounts it (kernel.bpf_stats_enabled,\n\
         one round with every family): {total:.0} ns.\n"
    )?;
    writeln!(s, "| program | ns per packet |")?;
    writeln!(s, "|---|---|")?;
    for (name, ns) in bpf_cost {
        writeln!(s, "| {name} | {ns:.0} |")?;
    }
    writeln!(s, "\n## Drop events, paced\n")?;
    writeln!(
        s,
        "UDP to a closed port: one NO_SOCKET drop, and one sample, per datagram; `netprobe report\n\
         --events drops --pod pod-b`, which drains the samples and takes drops from the exact\n\
         counters. Generated is the kernel's own count, the growth of pod-b's `Udp NoPorts`.\n"
    )?;
    writeln!(s, "| offered (events/s) | generated (Udp NoPorts) | netprobe exact count | delivered | lost | counted = generated = delivered + lost | userspace CPU | CPU per 100k events/s | peak RSS |")?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
    for e in events {
        let rate = e.generated as f64 / SECS;
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% | {:.1} MB |",
            e.rate.map_or("unpaced".into(), |r| r.to_string()),
            e.generated,
            e.counted,
            e.delivered,
            e.lost,
            if e.balanced() { "yes" } else { "NO" },
            e.cpu_fraction * 100.0,
            e.cpu_fraction * 100.0 / (rate / 100_000.0),
            e.rss_kb as f64 / 1024.0
        )?;
    }
    writeln!(
        s,
        "\n`netprobe watch --events drops --format json > /dev/null`, which decodes and prints every\n\
         sample, used {:.1}% of a vCPU at 100k events/s.",
        watch * 100.0
    )?;
    let (udp_ratio, tcp_ratio) = (median(&udp[1]) / u0, median(&tcp[1]) / t0);
    let at_100k = events.iter().find(|e| e.rate == Some(100_000));
    let rss_mb = events.iter().map(|e| e.rss_kb).max().unwrap_or(0) as f64 / 1024.0;
    let cpu_per_100k = events
        .iter()
        .filter(|e| e.generated > 0)
        .map(|e| e.cpu_fraction * 100.0 / (e.generated as f64 / SECS / 100_000.0))
        .fold(0.0, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    writeln!(s, "\n## Targets\n")?;
    writeln!(s, "| target | measured | |")?;
    writeln!(s, "|---|---|---|")?;
    writeln!(
        s,
        "| 64-byte UDP, netprobe / none ≥ 0.98 | {udp_ratio:.3} | {} |",
        verdict(udp_ratio >= 0.98)
    )?;
    writeln!(
        s,
        "| TCP stream, netprobe / none ≥ 0.99 | {tcp_ratio:.3} | {} |",
        verdict(tcp_ratio >= 0.99)
    )?;
    if let Some(e) = at_100k {
        writeln!(
            s,
            "| 0 lost samples at 100k events/s | {} lost | {} |",
            e.lost,
            verdict(e.lost == 0)
        )?;
    }
    let balanced = events.iter().all(EventRun::balanced);
    writeln!(
        s,
        "| Udp NoPorts = netprobe's count = delivered + counted lost | {} | {} |",
        if balanced { "every run" } else { "not every run" },
        verdict(balanced)
    )?;
    writeln!(
        s,
        "| userspace ≤ 5% of a vCPU per 100k events/s | {cpu_per_100k:.1}% (worst run) | {} |",
        verdict(cpu_per_100k <= 5.0)
    )?;
    writeln!(s, "| peak RSS ≤ 50 MB | {rss_mb:.1} MB | {} |", verdict(rss_mb <= 50.0))?;
    writeln!(s, "\n## What the numbers mean\n")?;
    writeln!(
        s,
        "- The machine is shared: a ratio is only worth more than the spread of its rounds.\n\
         - The UDP sender here gets one NET_RX softirq run per datagram (the veth hands each\n  \
         packet to the backlog and the softirq runs at once), so the softnet family's per-run\n  \
         hooks (softirq entry and exit, napi_poll) fire once per packet: the worst case for them.\n  \
         Under real load a run handles up to netdev_budget packets. Each packet also passes\n  \
         the bursts hooks four times: received and sent on the host-side veths (binned, with a\n  \
         clock read each: they are this node's namespace) and on the pods' eth0 (skipped: another\n  \
         netns). That is seven BPF programs per packet, and the dispatch of a tracepoint program\n  \
         alone costs tens of ns: 0.98 is out of reach in this one-packet-per-softirq worst case\n  \
         with every family on. On tp_btf the programs load arguments and fields directly; the\n  \
         clock reads and time_squeeze's helper read remain.\n\
         - The load generator saturates near the offered 200k events/s, so the ring buffer never\n  \
         overflowed here: the overload case (lost > 0) is not reached by this generator.\n\
         - Peak RSS is set at start-up, while the kernel's BTF (twice: btf-rs and aya) and\n  \
         /proc/kallsyms are parsed; steady state is lower."
    )?;
    Ok(s)
}
