//! Drop events: what netprobe delivers and loses at paced rates and under overload, and what
//! decoding and printing them costs in userspace.

use std::{
    fs,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context, Result};
use netprobe_tests::{lab::Lab, netprobe::Running};

use super::{cpu_ticks, ticks_per_sec, Reaped, Tools, CLOSED_PORT};

/// One run of drop events.
pub struct EventRun {
    /// Offered events per second; None: as fast as the generator goes.
    pub rate: Option<u64>,
    /// The drops the kernel itself counted: the growth of pod-b's own `Udp NoPorts`.
    pub generated: u64,
    /// The report's exact count of them (pod-b's NO_SOCKET drops, per-CPU kernel maps).
    pub counted: u64,
    /// watch's drop records, and the samples it says it lost.
    pub delivered: u64,
    pub lost: u64,
    /// The report's userspace CPU time over the run.
    pub cpu_secs: f64,
    pub rss_kb: u64,
    pub secs: f64,
}

impl EventRun {
    /// The kernel's count, netprobe's exact count, and the samples delivered or counted lost
    /// all agree.
    pub fn balanced(&self) -> bool {
        self.counted == self.generated && self.delivered + self.lost == self.generated
    }

    /// Share of one vCPU over the traffic.
    pub fn cpu_fraction(&self) -> f64 {
        self.cpu_secs / self.secs
    }

    /// Userspace CPU (share of one vCPU) per 100k events/s: CPU time per event.
    pub fn cpu_per_100k(&self) -> f64 {
        self.cpu_secs * 100_000.0 / self.generated.max(1) as f64
    }
}

pub fn rates(lab: &Lab, tools: &Tools, secs: f64) -> Result<Vec<EventRun>> {
    let mut runs = Vec::new();
    for rate in [Some(25_000), Some(50_000), Some(100_000), Some(200_000), None] {
        runs.push(drops_run(lab, tools, secs, rate, false)?);
    }
    Ok(runs)
}

/// The ring buffer overflowing: netprobe stopped (SIGSTOP, as a starved node would leave it)
/// while the generator runs unpaced, then let go.
pub fn overload(lab: &Lab, tools: &Tools, secs: f64) -> Result<EventRun> {
    drops_run(lab, tools, secs, None, true)
}

/// `netprobe watch` of pod-b's drops, its records counted as they come.
struct Watch {
    child: Reaped,
    /// Drop records, and the last lost_samples total.
    counts: JoinHandle<Result<(u64, u64)>>,
}

impl Watch {
    fn start(tools: &Tools) -> Result<Self> {
        let mut child = Command::new(&tools.netprobe)
            .args(["watch", "--events", "drops", "--pod", "pod-b", "--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().context("watch's stdout")?;
        let counts = thread::spawn(move || {
            let (mut drops, mut lost) = (0, 0);
            for line in BufReader::new(out).lines() {
                let line = line?;
                if line.starts_with(r#"{"type":"drop","#) {
                    drops += 1;
                } else if line.starts_with(r#"{"type":"lost_samples","#) {
                    let v: serde_json::Value = serde_json::from_str(&line)?;
                    lost = v["total"].as_u64().context("lost_samples without a total")?;
                }
            }
            Ok((drops, lost))
        });
        // Attaching takes well under this; watch gives no readiness signal on stdout.
        thread::sleep(Duration::from_secs(3));
        Ok(Self { child: Reaped(child), counts })
    }

    fn stop(self) -> Result<(u64, u64)> {
        self.child.interrupt()?;
        self.counts.join().map_err(|_| anyhow::anyhow!("watch's reader panicked"))?
    }
}

/// UDP to a closed port in pod-b, one NO_SOCKET drop per datagram, under `netprobe report
/// --events drops --pod pod-b`, which counts drops without sampling them, and `netprobe watch`
/// of the same, which samples every one.
fn drops_run(
    lab: &Lab,
    tools: &Tools,
    secs: f64,
    rate: Option<u64>,
    stall: bool,
) -> Result<EventRun> {
    // Only pod-b's drops (filtered in the kernel): watch's samples are those of the blast.
    let np = Running::start_bin(
        &tools.netprobe,
        &["report", "--duration", "10m", "--events", "drops", "--pod", "pod-b", "--format", "json"],
    )?;
    let watch = Watch::start(tools)?;
    let no_ports_before = lab.snmp("pod-b", "Udp", "NoPorts")?;
    let pids = [np.pid(), watch.child.0.id()];
    let cpu_before = cpu_ticks(pids[0])?;
    let b = lab.ip("pod-b");
    let pace = rate.map(|r| r.to_string()).unwrap_or_default();
    let signal = |sig| {
        for p in pids {
            unsafe { libc::kill(p as i32, sig) };
        }
    };
    if stall {
        signal(libc::SIGSTOP);
    }
    let sent = lab.sh_ok(
        "pod-a",
        &format!("taskset -c 0 {} blast-for {b} {CLOSED_PORT} {secs} {pace}", tools.labtool),
    );
    if stall {
        signal(libc::SIGCONT);
    }
    sent?;
    // Draining a full ring buffer (4 MB) takes well under this.
    thread::sleep(Duration::from_millis(1500));
    let cpu_secs = (cpu_ticks(pids[0])? - cpu_before) as f64 / ticks_per_sec();
    let rss_kb = status_kb(pids[0], "VmHWM:")?;
    let (delivered, lost) = watch.stop()?;
    let (_, out) = super::np_stop(np)?;
    let report: serde_json::Value = serde_json::from_str(&out)?;
    let generated = lab.snmp("pod-b", "Udp", "NoPorts")? - no_ports_before;
    let drops = report["drops"].as_array().context("the report has no drops")?;
    let mut counted = 0;
    for d in drops.iter().filter(|d| d["pod"] == "pod-b" && d["reason"] == "NO_SOCKET") {
        counted += d["count"].as_u64().context("a drop row without a count")?;
    }
    let run = EventRun { rate, generated, counted, delivered, lost, cpu_secs, rss_kb, secs };
    println!(
        "events at {:>8}/s{}: generated {} counted {} delivered {} lost {} cpu {:.1}% rss {} kB",
        rate.map_or("max".into(), |r| r.to_string()),
        if stall { ", netprobe stopped meanwhile" } else { "" },
        run.generated,
        run.counted,
        run.delivered,
        run.lost,
        run.cpu_fraction() * 100.0,
        run.rss_kb
    );
    Ok(run)
}

/// `netprobe watch --events drops --format json > /dev/null` under 100k drop events/s: the
/// userspace CPU of decoding and printing every sample, per 100k events/s.
pub fn watch_cpu(lab: &Lab, tools: &Tools, secs: f64) -> Result<f64> {
    let no_ports_before = lab.snmp("pod-b", "Udp", "NoPorts")?;
    let child = Reaped(
        Command::new(&tools.netprobe)
            .args(["watch", "--events", "drops", "--pod", "pod-b", "--format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // Attaching takes well under this; watch gives no readiness signal on stdout.
    thread::sleep(Duration::from_secs(3));
    let pid = child.0.id();
    let before = cpu_ticks(pid)?;
    let b = lab.ip("pod-b");
    lab.sh_ok(
        "pod-a",
        &format!("taskset -c 0 {} blast-for {b} {CLOSED_PORT} {secs} 100000", tools.labtool),
    )?;
    thread::sleep(Duration::from_millis(300));
    let cpu_secs = (cpu_ticks(pid)? - before) as f64 / ticks_per_sec();
    child.interrupt()?;
    let events = lab.snmp("pod-b", "Udp", "NoPorts")? - no_ports_before;
    let per_100k = cpu_secs * 100_000.0 / events.max(1) as f64;
    println!(
        "watch --format json: {events} events in {secs} s, {:.1}% of a vCPU per 100k events/s",
        per_100k * 100.0
    );
    Ok(per_100k)
}

fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(key)).context("no such status line")?;
    Ok(line.split_whitespace().nth(1).context("no value")?.parse()?)
}
