//! Softnet budget exhaustion and backlog overflow (incident 01), against the kernel's own
//! /proc/net/softnet_stat, per CPU. netdev_budget and netdev_max_backlog are global: the lab
//! restores them even when the test fails, and its lock keeps other tests out meanwhile.

mod common;

use std::{fs, thread, time::Duration};

use common::{incident, require_root};
use netprobe_tests::netprobe::Running;
use serde_json::Value;

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
    let (lab, _running, incident) = incident("softnet-squeeze")?;
    let np = Running::report(incident.events)?;
    let before = softnet_stat();
    (incident.provoke)(&lab)?;
    thread::sleep(Duration::from_millis(500));
    let after = softnet_stat();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);

    let sn = &report["softnet"];
    let cpus = sn["cpus"].as_array().unwrap();
    for (cpu, (b, a)) in before.iter().zip(&after).enumerate() {
        println!(
            "CPU {cpu} squeezes: netprobe {}, softnet_stat {}",
            cpus[cpu]["squeezes"],
            a.1 - b.1
        );
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
    // The blast is received twice: on pod-a's host-side veth (the host netns, CPU 0's
    // backlog) and on pod-b's eth0 (CPU 1's, by RPS). Both backlogs are tiny, so drops land
    // on either; every one is counted, each where it happened.
    println!(
        "backlog drops: netprobe {} (pod-b {}, host {}), softnet_stat {kernel_dropped}",
        by(None),
        by(Some("pod-b")),
        by(Some("host"))
    );
    assert_eq!(by(None), kernel_dropped, "{backlog:?}");
    assert!(by(Some("pod-b")) > 0, "{backlog:?}");
    assert!(backlog.iter().all(|d| d["pod"] == "pod-b" || d["pod"] == "host"), "{backlog:?}");
    Ok(())
}
