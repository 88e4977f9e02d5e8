//! `cargo xtask bench`: what netprobe costs the traffic it watches, measured in one run on
//! this machine, next to no agent, to the bare hooks (the floor: empty programs of the same
//! types on the same hooks) and to the ad hoc alternative (bpftrace). Results go to
//! docs/benchmarks.md. A benchmark, not a test: it reports and compares with the targets of
//! issue 14, it does not fail on them.

mod events;
mod floor;
mod render;
pub mod stats;

use std::{
    collections::BTreeMap,
    fs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use netprobe::{Family, Point, Tier};
use netprobe_tests::{
    lab::{Background, Lab},
    netprobe::Running,
};

use floor::Floor;

/// How long and how often; `--quick` is a smoke run.
#[derive(Clone, clap::Args)]
pub struct Options {
    /// Rounds of every mode, each between no-agent runs.
    #[arg(long, default_value_t = 12)]
    pub rounds: usize,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// A smoke run: 2 rounds of 1.5 s (noisy; proves the bench works, not the numbers).
    #[arg(long)]
    pub quick: bool,
    /// Only this measurement, `rounds` times; docs/benchmarks.md is left alone.
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// With --only: measure this netprobe binary rather than the one built here, so that two
    /// builds compare in one session.
    #[arg(long, requires = "only", value_name = "PATH")]
    pub netprobe: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// `watch --format json`'s userspace CPU per 100k drop events/s.
    Watch,
    /// Each program's kernel-accounted time per run (bpf_stats), netprobe's and the floor's.
    Stats,
    /// `netprobe agent` beside `netprobe report` (the same families), each between no-agent
    /// runs: what the agent adds to the default families.
    Agent,
}

const UDP_PORT: &str = "7000";
/// Quiet before each run's traffic.
const SETTLE: Duration = Duration::from_secs(1);
const CLOSED_PORT: &str = "7999";
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

/// What runs during a measurement, besides the traffic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    None,
    FloorDefault,
    Default,
    /// Default, its process stopped (SIGSTOP) for the traffic: its programs alone.
    DefaultStopped,
    FloorEvery,
    Every,
    Bpftrace,
    Agent,
    /// No BPF: a process reading two /proc files ten times a second, the reference for what
    /// any periodic userspace costs this traffic.
    ProcReader,
}

impl Mode {
    pub const MEASURED: [Mode; 8] = [
        Mode::FloorDefault,
        Mode::Default,
        Mode::DefaultStopped,
        Mode::FloorEvery,
        Mode::Every,
        Mode::Bpftrace,
        Mode::Agent,
        Mode::ProcReader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "no agent",
            Mode::FloorDefault => "floor: empty programs on the default families' hooks",
            Mode::Default => "`netprobe report`, default families",
            Mode::DefaultStopped => "the same, its process stopped during the traffic",
            Mode::FloorEvery => "floor: empty programs on every family's hooks",
            Mode::Every => "`netprobe report --events` every family but linklocal",
            Mode::Bpftrace => "bpftrace, the same hooks",
            Mode::Agent => "`netprobe agent`",
            Mode::ProcReader => {
                "reference, no BPF: a process reading /proc/net/snmp and /proc/net/netstat \
                 every 100 ms"
            }
        }
    }
}

/// An agent running for one measurement; dropping it detaches.
enum Agent {
    None,
    Netprobe(Running),
    // Attached until dropped.
    Floor {
        _attached: Floor,
    },
    /// bpftrace, or the reference process.
    Child(Reaped),
}

/// A child process killed and waited for when dropped, so that no early return leaves
/// bpftrace or netprobe attached.
pub struct Reaped(pub Child);

impl Reaped {
    /// Ctrl-C, then waits for it to exit.
    pub fn interrupt(mut self) -> Result<()> {
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

pub struct Tools {
    pub netprobe: PathBuf,
    pub labtool: String,
    /// Where the floor's object is assembled.
    pub scratch: PathBuf,
}

/// The hooks each mode's floor attaches, as netprobe attaches them on this kernel.
pub struct Hooks {
    /// (family, point) for the default families' floor and every family's.
    pub default: Vec<(Family, Point)>,
    pub every: Vec<(Family, Point)>,
    /// The tier each family runs at here.
    pub tiers: Vec<(Family, Tier)>,
}

/// One mode's runs: its packets per second, and the no-agent runs just before and after each.
#[derive(Default, Clone)]
pub struct Runs {
    pub pps: Vec<f64>,
    pub before: Vec<f64>,
    pub after: Vec<f64>,
    /// The agent process's own CPU during each run's traffic, in vCPUs (none for the floors).
    pub cpu: Vec<f64>,
    /// Notes from the runs (softnet's run hooks attaching, say).
    pub notes: Vec<String>,
}

impl Runs {
    /// Per round: throughput over the mean of the no-agent runs around it.
    pub fn ratios(&self) -> Vec<f64> {
        let base = self.before.iter().zip(&self.after).map(|(b, a)| (b + a) / 2.0);
        self.pps.iter().zip(base).map(|(p, b)| p / b).collect()
    }

    /// Per round: nanoseconds added per packet against the no-agent runs around it.
    pub fn added_ns(&self) -> Vec<f64> {
        let base = self.before.iter().zip(&self.after).map(|(b, a)| (b + a) / 2.0);
        self.pps.iter().zip(base).map(|(p, b)| (1.0 / p - 1.0 / b) * 1e9).collect()
    }
}

pub fn run(mut o: Options) -> Result<()> {
    if o.quick {
        (o.rounds, o.secs) = (2, 1.5);
    }
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark creates network namespaces and loads BPF programs: run as root");
    }
    match o.only {
        Some(Only::Watch) => return watch_only(&o),
        Some(Only::Stats) => return stats_only(&o),
        Some(Only::Agent) => return agent_only(&o),
        None => {}
    }
    if Command::new("bpftrace").arg("--version").output().is_err() {
        bail!("bpftrace is not installed: run scripts/install-deps");
    }
    let tools = build(None)?;
    let (lab, _sink, hooks) = udp_lab(&tools)?;

    let Rounds { none, runs_per_datagram, runs } =
        rounds(&lab, &tools, &hooks, &Mode::MEASURED, &o)?;
    let programs = stats::per_program(&lab, &tools, &hooks, o.secs)?;
    let events = events::rates(&lab, &tools, o.secs)?;
    let overload = events::overload(&lab, &tools, o.secs)?;
    let watch = events::watch_cpu(&lab, &tools, o.secs)?;
    drop(lab);

    let doc = render::Doc {
        options: o,
        hooks: &hooks,
        none: &none,
        runs_per_datagram: &runs_per_datagram,
        runs: &runs,
        programs: &programs,
        events: &events,
        overload: &overload,
        watch,
    };
    let report = doc.render()?;
    print!("{report}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/benchmarks.md");
    fs::write(path, report).context("writing docs/benchmarks.md")?;
    println!("written to docs/benchmarks.md");
    Ok(())
}

/// The no-agent runs, NET_RX runs per datagram in each, and every measured mode's runs.
struct Rounds {
    none: Vec<f64>,
    runs_per_datagram: Vec<f64>,
    runs: Vec<Runs>,
}

/// `o.rounds` rounds of `modes`, each mode between two no-agent runs; the rounds interleave
/// the modes, so that drift on a shared machine hits every mode alike.
fn rounds(lab: &Lab, tools: &Tools, hooks: &Hooks, modes: &[Mode], o: &Options) -> Result<Rounds> {
    let mut runs = vec![Runs::default(); modes.len()];
    let mut none = Vec::new();
    let mut runs_per_datagram = Vec::new();
    for round in 0..o.rounds {
        let first = measure(lab, tools, hooks, Mode::None, o.secs)?;
        none.push(first.pps);
        runs_per_datagram.push(first.runs_per_datagram);
        for (i, &mode) in modes.iter().enumerate() {
            let m = measure(lab, tools, hooks, mode, o.secs)?;
            let after = measure(lab, tools, hooks, Mode::None, o.secs)?;
            let (pps, r) = (m.pps, &mut runs[i]);
            r.before.push(*none.last().expect("measured above"));
            r.pps.push(pps);
            r.after.push(after.pps);
            r.cpu.extend(m.cpu);
            r.notes.extend(m.notes);
            none.push(after.pps);
            runs_per_datagram.push(after.runs_per_datagram);
            println!(
                "round {}/{}: {:<55} {pps:>8.0} pps, ratio {:.3}",
                round + 1,
                o.rounds,
                mode.name(),
                r.ratios().last().expect("pushed above")
            );
        }
    }
    Ok(Rounds { none, runs_per_datagram, runs })
}

/// `rounds` rounds of report and the agent; each one's median ratio and spread.
fn agent_only(o: &Options) -> Result<()> {
    let tools = build(o.netprobe.clone())?;
    let (lab, _sink, hooks) = udp_lab(&tools)?;
    let modes = [Mode::Default, Mode::Agent];
    let Rounds { runs, .. } = rounds(&lab, &tools, &hooks, &modes, o)?;
    println!("{} rounds of {}:", o.rounds, tools.netprobe.display());
    for (mode, r) in modes.iter().zip(&runs) {
        let ratios = r.ratios();
        println!("{:<40} {:.3} ± {:.3}", mode.name(), median(&ratios), render::spread(&ratios));
    }
    Ok(())
}

/// `rounds` runs of `watch_cpu`, each with its own result, then their median and range.
fn watch_only(o: &Options) -> Result<()> {
    let tools = build(o.netprobe.clone())?;
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let mut runs = Vec::new();
    for _ in 0..o.rounds {
        runs.push(events::watch_cpu(&lab, &tools, o.secs)?);
    }
    let (min, max) = runs.iter().fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    println!(
        "{} runs of {}: median {:.2}%, {:.2}% to {:.2}% of a vCPU per 100k events/s",
        runs.len(),
        tools.netprobe.display(),
        median(&runs) * 100.0,
        min * 100.0,
        max * 100.0
    );
    Ok(())
}

/// `rounds` bpf_stats passes; per program, the median time per run and runs per packet.
fn stats_only(o: &Options) -> Result<()> {
    let tools = build(o.netprobe.clone())?;
    let (lab, _sink, hooks) = udp_lab(&tools)?;
    // Per (pass, program): each pass's ns per run and runs per packet.
    type Passes = (Vec<f64>, Vec<f64>);
    let mut per_run: BTreeMap<(&str, String), Passes> = BTreeMap::new();
    for _ in 0..o.rounds {
        let pass = stats::per_program(&lab, &tools, &hooks, o.secs)?;
        let passes =
            [("netprobe", pass.netprobe), ("watch", pass.sampling_drops), ("floor", pass.floor)];
        for (who, programs) in passes {
            for p in programs.into_iter().filter(|p| p.runs_per_packet > 0.0) {
                let (ns, runs) = per_run.entry((who, p.name)).or_default();
                ns.push(p.ns_per_packet / p.runs_per_packet);
                runs.push(p.runs_per_packet);
            }
        }
    }
    println!("{} passes of {}, ns per run:", o.rounds, tools.netprobe.display());
    for ((who, name), (ns, runs)) in &per_run {
        let (lo, hi) = ns.iter().fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        println!(
            "{who:<8} {name:<28} {:>6.1} ns ({lo:.1} to {hi:.1}), {:.3} runs per packet",
            median(ns),
            median(runs)
        );
    }
    Ok(())
}

/// The lab the throughput runs share: pod-a and pod-b, a UDP sink in pod-b, and the hooks
/// the floors attach.
fn udp_lab(tools: &Tools) -> Result<(Lab, Background, Hooks)> {
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let sink = lab.spawn("pod-b", &tools.labtool, &["udp-sink", UDP_PORT])?;
    thread::sleep(Duration::from_millis(300));
    let hooks = hooks(tools)?;
    Ok((lab, sink, hooks))
}

/// Builds labtool, and netprobe unless `netprobe` names a binary to use.
fn build(netprobe: Option<PathBuf>) -> Result<Tools> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--release", "--quiet", "-p", "netprobe-tests", "--bin", "labtool"]);
    if netprobe.is_none() {
        cargo.args(["-p", "netprobe", "--bin", "netprobe"]);
    }
    if !cargo.status().context("running cargo build")?.success() {
        bail!("cargo build failed");
    }
    let target = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"));
    let release = target.join("release");
    Ok(Tools {
        netprobe: netprobe.unwrap_or_else(|| release.join("netprobe")),
        labtool: release.join("labtool").display().to_string(),
        scratch: target.join("bench"),
    })
}

/// The tiers netprobe picks here (from a short report with every family), and the hooks the
/// floors attach: the default families' without softnet's run hooks when they follow
/// squeezes (they are detached in this traffic, which the runs check), every family's.
fn hooks(tools: &Tools) -> Result<Hooks> {
    let np = Running::start_bin(
        &tools.netprobe,
        &["report", "--duration", "1s", "--events", EVERY_FAMILY, "--format", "json"],
    )?;
    let report: serde_json::Value = serde_json::from_str(&np.wait()?)?;
    let mut tiers = Vec::new();
    for f in report["families"].as_array().context("the report has no families")? {
        tiers.push((
            serde_json::from_value(f["family"].clone())?,
            serde_json::from_value(f["tier"].clone())?,
        ));
    }
    let points = |families: &[Family]| -> Result<Vec<(Family, Point)>> {
        let mut out = Vec::new();
        for &(family, tier) in tiers.iter().filter(|(f, _)| families.contains(f)) {
            let points = family.points(tier).context("a tier the family has")?;
            out.extend(points.into_iter().map(|p| (family, p)));
        }
        Ok(out)
    };
    let default: Vec<Family> =
        Family::DEFAULT.into_iter().filter(|f| *f != Family::Softnet).collect();
    Ok(Hooks { default: points(&default)?, every: points(&Family::ALL)?, tiers })
}

fn start(mode: Mode, tools: &Tools, hooks: &Hooks) -> Result<Agent> {
    let report = |events: &[&str]| {
        let mut args = vec!["report", "--duration", "10m", "--format", "json"];
        args.extend(events);
        Running::start_bin(&tools.netprobe, &args).map(Agent::Netprobe)
    };
    let floor = |points: &[(Family, Point)]| {
        let points: Vec<Point> = points.iter().map(|(_, p)| *p).collect();
        Floor::attach(&points, &tools.scratch).map(|f| Agent::Floor { _attached: f })
    };
    match mode {
        Mode::None => Ok(Agent::None),
        Mode::FloorDefault => floor(&hooks.default),
        Mode::Default | Mode::DefaultStopped => report(&[]),
        Mode::FloorEvery => floor(&hooks.every),
        Mode::Every => report(&["--events", EVERY_FAMILY]),
        Mode::Agent => Running::start_bin(&tools.netprobe, &["agent", "--listen", "127.0.0.1:0"])
            .map(Agent::Netprobe),
        Mode::ProcReader => {
            let child = Command::new(&tools.labtool)
                .args(["read-every", "100", "/proc/net/snmp", "/proc/net/netstat"])
                .spawn()
                .context("starting labtool read-every")?;
            Ok(Agent::Child(Reaped(child)))
        }
        Mode::Bpftrace => {
            let child = Command::new("bpftrace")
                .args(["-e", BPFTRACE])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("starting bpftrace")?;
            let mut child = Reaped(child);
            // bpftrace prints "Attaching N probes..." once they are attached.
            let out = child.0.stdout.take().context("piped")?;
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)?;
            if !line.starts_with("Attaching") {
                bail!("bpftrace did not attach: {line:?}");
            }
            Ok(Agent::Child(child))
        }
    }
}

impl Agent {
    fn pid(&self) -> Option<u32> {
        match self {
            Agent::Netprobe(np) => Some(np.pid()),
            Agent::Child(child) => Some(child.0.id()),
            Agent::None | Agent::Floor { .. } => None,
        }
    }
}

/// Notes the agent printed about softnet's run hooks.
fn stop(agent: Agent) -> Result<Vec<String>> {
    match agent {
        Agent::None | Agent::Floor { .. } => Ok(Vec::new()),
        Agent::Netprobe(np) => np_stop(np).map(|(notes, _)| notes),
        Agent::Child(child) => child.interrupt().map(|()| Vec::new()),
    }
}

/// Stops netprobe (SIGTERM: the agent's signal; report ends on it as on Ctrl-C): its
/// stderr lines about softnet's run hooks.
fn np_stop(mut np: Running) -> Result<(Vec<String>, String)> {
    let notes =
        np.stderr_now().into_iter().filter(|l| l.contains("per-run hooks attached")).collect();
    let (status, out) = np.stop_with(libc::SIGTERM)?;
    if !status.success() {
        bail!("netprobe exited with {status}");
    }
    Ok((notes, out))
}

/// One run of `mode`: 64-byte UDP datagrams from pod-a (pinned to CPU 0) into a socket in
/// pod-b, delivered per second, with NET_RX runs per datagram and the agent's notes.
fn measure(lab: &Lab, tools: &Tools, hooks: &Hooks, mode: Mode, secs: f64) -> Result<Measured> {
    let agent = start(mode, tools, hooks)?;
    // The last run's agent has just exited and detached (RCU, freeing its maps): let that
    // finish, alike for every mode, before the traffic.
    thread::sleep(SETTLE);
    let (before, runs_before) = (lab.snmp("pod-b", "Udp", "InDatagrams")?, net_rx_runs()?);
    let stopped = mode == Mode::DefaultStopped;
    let signal = |sig| agent.pid().map(|pid| unsafe { libc::kill(pid as i32, sig) });
    if stopped {
        signal(libc::SIGSTOP);
    }
    let ticks_before = agent.pid().map(cpu_ticks).transpose()?;
    let b = lab.ip("pod-b");
    lab.sh_ok("pod-a", &format!("taskset -c 0 {} blast-for {b} {UDP_PORT} {secs}", tools.labtool))?;
    let delivered = (lab.snmp("pod-b", "Udp", "InDatagrams")? - before).max(1);
    let runs = net_rx_runs()? - runs_before;
    let cpu = match (agent.pid(), ticks_before) {
        (Some(pid), Some(t)) => Some((cpu_ticks(pid)? - t) as f64 / ticks_per_sec() / secs),
        _ => None,
    };
    if stopped {
        signal(libc::SIGCONT);
    }
    let notes = stop(agent)?;
    Ok(Measured {
        pps: delivered as f64 / secs,
        runs_per_datagram: runs as f64 / delivered as f64,
        cpu,
        notes,
    })
}

/// One run's figures.
struct Measured {
    pps: f64,
    runs_per_datagram: f64,
    /// The agent's process (user and system time, not its BPF programs'), in vCPUs.
    cpu: Option<f64>,
    notes: Vec<String>,
}

/// NET_RX softirq runs on every CPU so far (/proc/softirqs).
fn net_rx_runs() -> Result<u64> {
    let text = fs::read_to_string("/proc/softirqs")?;
    let line = text.lines().find(|l| l.trim_start().starts_with("NET_RX:")).context("NET_RX")?;
    Ok(line.split_whitespace().skip(1).filter_map(|v| v.parse::<u64>().ok()).sum())
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may contain spaces), 1-based: utime is 14, stime 15.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

pub fn ticks_per_sec() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
