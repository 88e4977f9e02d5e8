//! `cargo xtask agent-cost [--soak 30m]`: what `netprobe agent` costs on this machine, measured
//! in one run, and written into docs/agent.md between its cost markers: CPU at idle and per
//! 100k events/s, resident memory at start and over a soak, and the time of a scrape with
//! 100 pods. Needs root. Its traffic stays on the loopback of namespaces of its own, so it
//! needs neither the lab's bridge nor its lock and can soak while the lab tests run.

use std::{
    fs,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use netprobe_tests::{incidents::labtool, lab::snmp_value};

const BEGIN: &str = "<!-- agent-cost: begin (cargo xtask agent-cost writes this) -->";
const END: &str = "<!-- agent-cost: end -->";

/// The agent, killed and reaped on every way out.
struct Agent {
    child: Child,
    url: String,
}

impl Agent {
    fn start(bin: &str, port: u16, retain: Duration) -> Result<Self> {
        let child = Command::new(bin)
            .args(["agent", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--retain", &format!("{}s", retain.as_secs())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting netprobe agent")?;
        let agent = Self { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&format!("{}/readyz", agent.url)).is_err() {
            if Instant::now() > deadline {
                bail!("the agent never got ready");
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(agent)
    }

    /// (user + system CPU seconds, resident KiB), from /proc.
    fn usage(&self) -> Result<(f64, u64)> {
        let pid = self.child.id();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the parenthesised comm: utime and stime are the 12th and 13th.
        let rest = stat.rsplit_once(')').context("a stat line")?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let cpu = (f[11].parse::<f64>()? + f[12].parse::<f64>()?) / ticks;
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("VmRSS")?;
        Ok((cpu, rss))
    }

    /// Seconds the agent's BPF programs have run, by the kernel's statistics (`BpfStats`).
    fn bpf_seconds(&self) -> Result<f64> {
        let ns: u64 = crate::bench::stats::run_times(self.child.id())?.values().map(|v| v.0).sum();
        Ok(ns as f64 / 1e9)
    }
}

/// The kernel keeps BPF programs' run times while this is open (BPF_ENABLE_STATS), and stops
/// when it closes, even if we crash: no global sysctl to restore. The programs run in the
/// context of the traffic they trace, so the agent's own CPU time does not include them.
struct BpfStats {
    _fd: std::os::fd::OwnedFd,
}

impl BpfStats {
    fn enable() -> Result<Self> {
        use std::os::fd::FromRawFd;
        const BPF_ENABLE_STATS: libc::c_long = 32;
        let run_time: u32 = 0; // BPF_STATS_RUN_TIME, the attribute's only field
        let fd =
            unsafe { libc::syscall(libc::SYS_bpf, BPF_ENABLE_STATS, &run_time as *const u32, 4) };
        if fd < 0 {
            bail!("BPF_ENABLE_STATS: {}", std::io::Error::last_os_error());
        }
        Ok(Self { _fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) } })
    }
}

impl Agent {
    /// A series of `/metrics`, by its name and labels as exposed.
    fn metric(&self, series: &str) -> Result<f64> {
        get(&format!("{}/metrics", self.url))?
            .lines()
            .find_map(|l| l.strip_prefix(series)?.parse::<f64>().ok())
            .with_context(|| format!("{series}in /metrics"))
    }

    fn memory(&self) -> Result<Memory> {
        let retained = self.metric("netprobe_retained_bytes{} ")?;
        Ok(Memory { rss: self.usage()?.1 as f64 / 1024.0, retained: retained / 1e6 })
    }
}

/// Megabytes, resident and of retained frames, at one moment.
#[derive(Clone, Copy)]
struct Memory {
    rss: f64,
    retained: f64,
}

impl Memory {
    fn rest(&self) -> f64 {
        self.rss - self.retained
    }

    /// Each measure at its most.
    fn max(self, o: Self) -> Self {
        Self { rss: self.rss.max(o.rss), retained: self.retained.max(o.retained) }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str) -> Result<String> {
    Ok(ureq::get(url).call()?.body_mut().read_to_string()?)
}

/// CPU shares of one vCPU over `secs`, while `during` runs: the agent's process, and its
/// BPF programs (in whatever context they ran).
#[derive(Clone, Copy)]
struct Cpu {
    agent: f64,
    bpf: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.agent + self.bpf
    }
}

fn cpu_share(agent: &Agent, secs: f64, during: impl FnOnce() -> Result<()>) -> Result<Cpu> {
    let ((c0, _), b0) = (agent.usage()?, agent.bpf_seconds()?);
    let t0 = Instant::now();
    during()?;
    let rest = Duration::from_secs_f64(secs).saturating_sub(t0.elapsed());
    thread::sleep(rest);
    let ((c1, _), b1) = (agent.usage()?, agent.bpf_seconds()?);
    let t = t0.elapsed().as_secs_f64();
    Ok(Cpu { agent: (c1 - c0) / t, bpf: (b1 - b0) / t })
}

pub fn run(soak: Duration, retain: Option<Duration>) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("agent-cost loads BPF programs and creates network namespaces: run it as root");
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "netprobe", "-p", "netprobe-tests"])
        .status()?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/netprobe");
    // Drops to a closed port on the pod's own loopback, each counted in the kernel.
    let pod = Netns::add("np-cost-pod")?;
    pod.exec("ip link set lo up")?;
    // A retained window shorter than the soak, so that the soak shows memory once the window
    // is full, and once the surge has left it.
    let retain = retain.unwrap_or((soak / 3).max(Duration::from_secs(60)));
    let agent = Agent::start(bin, 9997, retain)?;
    let (_, rss_start) = agent.usage()?;
    // The agent watches every netns, so other traffic on this machine is in "idle" too: it
    // is taken before and after the burst, and the burst is weighed against their mean.
    let stats = BpfStats::enable()?;
    let idle_before = cpu_share(&agent, 20.0, || Ok(()))?;
    let before = pod.no_ports()?;
    let lost_before = agent.metric("netprobe_lost_samples_total{} ")?;
    let t0 = Instant::now();
    let busy = cpu_share(&agent, 10.0, || {
        pod.exec(&format!("{} blast-for 127.0.0.1 9 10 100000", labtool())).map(drop)
    })?;
    let events = (pod.no_ports()? - before) as f64 / t0.elapsed().as_secs_f64();
    let lost = agent.metric("netprobe_lost_samples_total{} ")? - lost_before;
    let idle_after = cpu_share(&agent, 20.0, || Ok(()))?;
    drop(stats);
    let idle = Cpu {
        agent: (idle_before.agent + idle_after.agent) / 2.0,
        bpf: (idle_before.bpf + idle_after.bpf) / 2.0,
    };
    // CPU time comes in clock ticks: a share that did not grow with the load can read a
    // tick below idle, which is no growth, not a negative cost.
    let per_100k = |f: fn(&Cpu) -> f64| (f(&busy) - f(&idle)).max(0.0) / events * 100_000.0;

    // 100 pods (named network namespaces), then time the scrapes.
    let mut pods = Vec::new();
    for i in 0..100 {
        let name = format!("np-cost-{i}");
        pods.push(Netns::add(&name)?);
    }
    thread::sleep(Duration::from_secs(3));
    let mut scrapes: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            get(&format!("{}/metrics", agent.url)).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    scrapes.sort_by(f64::total_cmp);
    drop(pods);

    // Resident memory and what the retained frames take, together: the frames follow the
    // traffic that was sampled, so flat means the rest stays flat once the window is full.
    let mut samples = Vec::new();
    let soak_start = Instant::now();
    let end = soak_start + soak;
    let mut full = None;
    while Instant::now() < end {
        // A pod comes and goes, and a trickle of drops, all along the soak. Port errors (each
        // a retained event) surge for the first sixth, then trickle: the window fills and
        // empties again, and resident memory must come back down with it.
        drop(Netns::add("np-cost-churn")?);
        pod.exec(&format!("{} blast 127.0.0.1 9 200", labtool()))?;
        let errors = if soak_start.elapsed() < soak / 6 { 2000 } else { 20 };
        pod.exec(&format!("{} bind-taken 127.0.0.1 7000 {errors}", labtool()))?;
        thread::sleep(Duration::from_secs(10).min(end.saturating_duration_since(Instant::now())));
        let m = agent.memory()?;
        let t = soak_start.elapsed().as_secs();
        eprintln!("soak {t:>5} s: resident {:.1} MB, retained frames {:.1} MB", m.rss, m.retained);
        samples.push(m);
        if full.is_none() && soak_start.elapsed() >= retain {
            full = samples.last().copied();
        }
    }
    let last = agent.memory()?;
    let full = full.unwrap_or(last);
    let most = samples.iter().copied().fold(last, Memory::max);
    let most_rest = samples.iter().map(Memory::rest).fold(last.rest(), f64::max);
    drop(agent);
    drop(pod);

    let table = format!(
        "{BEGIN}\n| measure | result |\n|---|---|\n\
         | CPU at idle (the agent's process + its BPF programs) | {:.2}% + {:.2}% of one vCPU |\n\
         | CPU per 100k events/s (closed-port drops at {:.0}/s, each counted in the kernel; {} samples lost) | {:.1}% of one vCPU ({:.1}% + {:.1}%) |\n\
         | resident memory at start | {:.1} MB |\n\
         | resident memory over a {} soak, `--retain {}` (window full / end / most) | {:.1} MB / {:.1} MB / {:.1} MB |\n\
         | of which retained frames (same moments) | {:.1} MB / {:.1} MB / {:.1} MB |\n\
         | the rest: resident minus retained frames (same moments) | {:.1} MB / {:.1} MB / {:.1} MB |\n\
         | /metrics with 100 pods (median / slowest of 10) | {:.1} ms / {:.1} ms |\n\
         \nRelease build, one run on this machine (2 vCPUs); `cargo xtask agent-cost --soak 30m` \
         measures it again.\n{END}",
        idle.agent * 100.0,
        idle.bpf * 100.0,
        events,
        lost,
        per_100k(Cpu::total) * 100.0,
        per_100k(|c| c.agent) * 100.0,
        per_100k(|c| c.bpf) * 100.0,
        rss_start as f64 / 1024.0,
        humantime(soak),
        humantime(retain),
        full.rss,
        last.rss,
        most.rss,
        full.retained,
        last.retained,
        most.retained,
        full.rest(),
        last.rest(),
        most_rest,
        scrapes[scrapes.len() / 2],
        scrapes[scrapes.len() - 1],
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/agent.md");
    let doc = fs::read_to_string(path)?;
    let (Some(a), Some(b)) = (doc.find(BEGIN), doc.find(END)) else {
        bail!("docs/agent.md has no agent-cost markers");
    };
    let doc = format!("{}{table}{}", &doc[..a], &doc[b + END.len()..]);
    fs::write(path, doc)?;
    println!("{table}");
    Ok(())
}

fn humantime(d: Duration) -> String {
    match d.as_secs() {
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A named network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn add(name: &str) -> Result<Self> {
        let ok = Command::new("ip").args(["netns", "add", name]).status()?.success();
        if !ok {
            bail!("ip netns add {name} failed");
        }
        Ok(Self(name.to_owned()))
    }
}

impl Netns {
    fn exec(&self, script: &str) -> Result<String> {
        let out =
            Command::new("ip").args(["netns", "exec", &self.0, "sh", "-c", script]).output()?;
        if !out.status.success() {
            bail!("in {}: {script}: {}", self.0, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn no_ports(&self) -> Result<u64> {
        snmp_value(&self.exec("cat /proc/net/snmp")?, "Udp", "NoPorts").context("Udp NoPorts")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
