//! Softnet budget exhaustion and backlog overflow (incident 01), against the kernel's own
//! /proc/net/softnet_stat, per CPU. netdev_budget and netdev_max_backlog are global: the lab
//! restores them even when the test fails, and its lock keeps other tests out meanwhile.

mod common;

use std::{fs, thread, time::Duration};

use common::require_root;
use netprobe_tests::{lab::Lab, netprobe::Running};
use serde_json::Value;

const LABTOOL: &str = env!("CARGO_BIN_EXE_labtool");

/// (dropped, time_squeeze) per CPU line of /proc/net/softnet_stat.
fn softnet_stat() -> Vec<(u64, u64)> {
    fs::read_to_string("/proc/net/softnet_stat")
        .unwrap()
        .lines()
        .map(|l| {
            let col: Vec<u64> =
                l.split_whitespace().map(|v| u64::from_str_radix(v, 16).unwrap()).collect();
            (col[1], col[2])
        })
        .collect()
}

#[test]
fn squeezes_and_backlog_drops_match_softnet_stat() -> anyhow::Result<()> {
    require_root();
    let ncpu = thread::available_parallelism()?.get();
    assert!(ncpu >= 2, "RPS onto another CPU needs two CPUs");
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    // pod-b's receive work goes to CPU 1 while the sender runs on CPU 0, through a short
    // backlog drained on a small budget.
    lab.sh_ok("pod-b", "echo 2 > /sys/class/net/eth0/queues/rx-0/rps_cpus")?;
    // A budget below the backlog's depth: any full backlog is more than one run may take.
    lab.set_sysctl("net.core.netdev_budget", "4")?;
    lab.set_sysctl("net.core.netdev_max_backlog", "8")?;
    let np = Running::start(&[
        "report",
        "--duration",
        "10m",
        "--events",
        "drops,softnet",
        "--format",
        "json",
    ])?;
    let before = softnet_stat();
    let b = lab.ip("pod-b").to_string();
    // A trickle first: CPU 1's first backlog poll teaches netprobe where its softnet_data is.
    lab.sh_ok("pod-a", &format!("taskset -c 0 {LABTOOL} blast {b} 9 3"))?;
    thread::sleep(Duration::from_millis(200));
    lab.sh_ok("pod-a", &format!("taskset -c 0 {LABTOOL} blast {b} 9 200000"))?;
    thread::sleep(Duration::from_millis(500));
    let after = softnet_stat();
    let report: Value = serde_json::from_str(&np.stop()?)?;

    let sn = &report["softnet"];
    let cpus = sn["cpus"].as_array().unwrap();
    for (cpu, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(cpus[cpu]["squeezes"], a.1 - b.1, "CPU {cpu}: {sn:#} {}", report["health"]);
    }
    assert!(after[1].1 - before[1].1 > 10, "CPU 1 must be squeezed: {sn:#}");
    let kernel_dropped: u64 = before.iter().zip(&after).map(|(b, a)| a.0 - b.0).sum();
    assert!(kernel_dropped > 0, "the backlog must overflow");
    let backlog = sn["backlog_drops"].as_array().unwrap();
    let by = |pod: Option<&str>| -> u64 {
        let rows = backlog.iter().filter(|d| pod.is_none_or(|p| d["pod"] == p));
        rows.map(|d| d["count"].as_u64().unwrap()).sum()
    };
    // The host's own packets may meet the tiny backlog too: every drop counts, each where
    // it belongs.
    assert_eq!(by(None), kernel_dropped, "{backlog:?}");
    assert!(
        by(Some("pod-b")) * 10 >= kernel_dropped * 9,
        "pod-b's blast is most of it: {backlog:?}"
    );
    Ok(())
}
