//! Each program's cost as the kernel accounts it (kernel.bpf_stats_enabled), in a pass of its
//! own since the accounting adds its own cost to every run: netprobe with every family, watch
//! of drops (which samples each one the report only counts), then the floor on the same hooks,
//! over one UDP run each. The sysctl is restored after the pass.

use std::{collections::HashMap, fs, process::Command};

use anyhow::{Context, Result};
use netprobe::{Family, Point};
use netprobe_tests::{lab::Lab, netprobe::Running};

use super::{floor, np_stop, Floor, Hooks, Tools, EVERY_FAMILY, UDP_PORT};

/// One program over the pass.
pub struct Program {
    pub family: Family,
    pub name: String,
    /// Kernel-accounted run time per delivered packet.
    pub ns_per_packet: f64,
    /// Invocations per delivered packet.
    pub runs_per_packet: f64,
}

pub struct PerProgram {
    pub netprobe: Vec<Program>,
    /// The drops program under `watch --events drops`, which samples every drop.
    pub sampling_drops: Vec<Program>,
    pub floor: Vec<Program>,
}

impl PerProgram {
    /// Per family: netprobe's programs' ns per packet, and the floor's on the same hooks.
    pub fn by_family(&self) -> Vec<(Family, f64, f64, f64)> {
        Family::ALL
            .into_iter()
            .map(|f| {
                let sum = |ps: &[Program], g: fn(&Program) -> f64| -> f64 {
                    ps.iter().filter(|p| p.family == f).map(g).sum()
                };
                let runs = sum(&self.floor, |p| p.runs_per_packet);
                (
                    f,
                    sum(&self.netprobe, |p| p.ns_per_packet),
                    sum(&self.floor, |p| p.ns_per_packet),
                    runs,
                )
            })
            .collect()
    }

    /// A family's own work per hook run: its programs' time per run less the floor's, each
    /// over its own runs (drops fire on a share of packets that differs between the passes).
    /// None below one run per thousand packets: too few runs to time.
    pub fn own_per_run(&self, f: Family) -> Option<f64> {
        let per_run = |ps: &[Program]| {
            let (ns, runs) = ps
                .iter()
                .filter(|p| p.family == f)
                .fold((0.0, 0.0), |(n, r), p| (n + p.ns_per_packet, r + p.runs_per_packet));
            (runs >= 0.001).then(|| ns / runs)
        };
        Some(per_run(&self.netprobe)? - per_run(&self.floor)?)
    }
}

const STATS: &str = "kernel.bpf_stats_enabled";

pub fn per_program(lab: &Lab, tools: &Tools, hooks: &Hooks, secs: f64) -> Result<PerProgram> {
    let path = "/proc/sys/kernel/bpf_stats_enabled";
    let old = fs::read_to_string(path)?;
    lab.set_sysctl(STATS, "1")?;
    let result = pass(lab, tools, hooks, secs);
    // The lab restores it too when dropped, also on failure; this is for the passes after.
    fs::write(path, old.trim())?;
    result
}

fn pass(lab: &Lab, tools: &Tools, hooks: &Hooks, secs: f64) -> Result<PerProgram> {
    let np = Running::start_bin(
        &tools.netprobe,
        &["report", "--duration", "10m", "--events", EVERY_FAMILY, "--format", "json"],
    )?;
    let pid = np.pid();
    let family_of =
        |name: &str| Family::ALL.into_iter().find(|f| name.starts_with(&format!("{}_", f.name())));
    let netprobe = over_a_run(lab, tools, pid, secs, |name| family_of(name))?;
    np_stop(np)?;
    let watch = Running::start_bin(&tools.netprobe, &["watch", "--events", "drops"])?;
    let sampling_drops = over_a_run(lab, tools, watch.pid(), secs, |name| family_of(name))?;
    np_stop(watch)?;

    let points: Vec<Point> = hooks.every.iter().map(|(_, p)| *p).collect();
    let floor_programs = Floor::attach(&points, &tools.scratch)?;
    let names: HashMap<String, Family> =
        hooks.every.iter().enumerate().map(|(i, (f, _))| (floor::program_name(i), *f)).collect();
    let floor = over_a_run(lab, tools, std::process::id(), secs, |name| names.get(name).copied())?;
    drop(floor_programs);
    Ok(PerProgram { netprobe, sampling_drops, floor })
}

/// The growth of run time and count of `pid`'s programs over one UDP run, per packet.
fn over_a_run(
    lab: &Lab,
    tools: &Tools,
    pid: u32,
    secs: f64,
    family: impl Fn(&str) -> Option<Family>,
) -> Result<Vec<Program>> {
    let before = programs(pid)?;
    let start = lab.snmp("pod-b", "Udp", "InDatagrams")?;
    let b = lab.ip("pod-b");
    lab.sh_ok("pod-a", &format!("taskset -c 0 {} blast-for {b} {UDP_PORT} {secs}", tools.labtool))?;
    let packets = (lab.snmp("pod-b", "Udp", "InDatagrams")? - start).max(1) as f64;
    let mut out = Vec::new();
    for (id, (name, ns, cnt)) in programs(pid)? {
        let (_, ns0, cnt0) = before.get(&id).cloned().unwrap_or_default();
        let Some(family) = family(&name) else { continue };
        out.push(Program {
            family,
            name,
            ns_per_packet: (ns - ns0) as f64 / packets,
            runs_per_packet: (cnt - cnt0) as f64 / packets,
        });
    }
    out.sort_by(|a, b| b.ns_per_packet.total_cmp(&a.ns_per_packet));
    Ok(out)
}

/// `pid`'s BPF programs by id: run_time_ns and run_cnt, from the fdinfo of the process's
/// program descriptors (zero unless the kernel keeps BPF statistics).
pub fn run_times(pid: u32) -> Result<HashMap<u64, (u64, u64)>> {
    let mut counts = HashMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(info) = fs::read_to_string(entry?.path()) else { continue };
        let field =
            |k: &str| info.lines().find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok());
        if let (Some(id), Some(ns), Some(cnt)) =
            (field("prog_id:"), field("run_time_ns:"), field("run_cnt:"))
        {
            counts.insert(id, (ns, cnt));
        }
    }
    Ok(counts)
}

/// `pid`'s BPF programs by id: name, run_time_ns, run_cnt; the names from bpftool.
fn programs(pid: u32) -> Result<HashMap<u64, (String, u64, u64)>> {
    let counts = run_times(pid)?;
    let out = Command::new("bpftool").args(["-j", "prog", "show"]).output().context("bpftool")?;
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let names: HashMap<u64, String> = progs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_u64()?, p["name"].as_str()?.to_owned())))
        .collect();
    Ok(counts
        .into_iter()
        .filter_map(|(id, (ns, cnt))| Some((id, (names.get(&id)?.clone(), ns, cnt))))
        .collect())
}
