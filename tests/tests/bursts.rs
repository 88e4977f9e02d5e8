//! Microburst detection (incidents 01 and 02) against bursts we inject ourselves, and bin
//! totals against the interface's own rx_packets.

mod common;

use std::{thread, time::Duration};

use common::require_root;
use netprobe_tests::{incidents::labtool, lab::Lab, netprobe::Running};
use serde_json::Value;

const BIN_NS: u64 = 1_000_000;

fn rx_packets(lab: &Lab) -> anyhow::Result<u64> {
    Ok(lab.sh_ok("pod-b", "cat /sys/class/net/eth0/statistics/rx_packets")?.trim().parse()?)
}

/// Runs `netprobe bursts --pod pod-b` around a pulses run; returns the output, the injected
/// burst starts, and pod-b's rx_packets growth.
fn run(secs: u32, burst: u32) -> anyhow::Result<(Value, Vec<u64>, u64)> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    thread::sleep(Duration::from_millis(300));
    let duration = format!("{}s", secs + 3);
    let np = Running::start(&[
        "bursts",
        "--pod",
        "pod-b",
        "--threshold",
        "50kpps",
        "--duration",
        &duration,
        "--format",
        "json",
    ])?;
    let before = rx_packets(&lab)?;
    let b = lab.ip("pod-b");
    // Smooth 2000 pps, plus `burst` datagrams back to back every 200 ms.
    let starts =
        lab.sh_ok("pod-a", &format!("{} pulses {b} 9000 {secs} 2000 {burst} 200", labtool()))?;
    thread::sleep(Duration::from_millis(200));
    let grown = rx_packets(&lab)? - before;
    let out: Value = serde_json::from_str(&np.wait()?)?;
    Ok((out, serde_json::from_str(&starts)?, grown))
}

#[test]
fn injected_bursts_are_found_where_they_start() -> anyhow::Result<()> {
    let (out, injected, rx) = run(10, 300)?;
    let found: Vec<u64> =
        out["bursts"].as_array().unwrap().iter().map(|b| b["start_ns"].as_u64().unwrap()).collect();
    let hit = injected
        .iter()
        .filter(|t| found.iter().any(|f| f.abs_diff(**t / BIN_NS * BIN_NS) <= BIN_NS))
        .count();
    println!(
        "bursts: {} injected, {hit} found within a bin of their start, {} reported",
        injected.len(),
        found.len()
    );
    assert!(injected.len() >= 45, "{injected:?}");
    assert!(
        hit * 100 >= injected.len() * 99,
        "found {hit} of {}: {found:?} vs {injected:?}",
        injected.len()
    );
    assert!(found.len() <= injected.len(), "no bursts beyond the injected ones: {found:?}");

    let eth0 = out["interfaces"].as_array().unwrap().iter().find(|i| i["name"] == "eth0").unwrap();
    println!("eth0: {} packets in bins, rx_packets grew {rx}", eth0["packets"]);
    // The bins cover from before the first packet to after the last.
    assert_eq!(eth0["packets"], rx, "{eth0}");
    assert_eq!(out["missed_bins"], 0);
    Ok(())
}

#[test]
fn smooth_traffic_makes_no_bursts() -> anyhow::Result<()> {
    // A "burst" of one datagram is no burst: the traffic stays at about 2000 pps.
    let (out, _, _) = run(12, 1)?;
    let eth0 = out["interfaces"].as_array().unwrap().iter().find(|i| i["name"] == "eth0").unwrap();
    let bins = eth0["bins"].as_u64().unwrap();
    let bursts = out["bursts"].as_array().unwrap().len() as u64;
    println!("smooth: {bursts} bursts in {bins} bins");
    assert!(bins >= 10_000, "{bins}");
    assert!(
        bursts * 10_000 <= bins,
        "at most one false positive per 10^4 bins: {bursts} in {bins}"
    );
    Ok(())
}

#[test]
fn watch_streams_bursts_as_events() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    let np =
        Running::start(&["watch", "--pod", "pod-b", "--events", "bursts", "--format", "json"])?;
    // The default threshold is relative: it needs a second of quiet bins first.
    thread::sleep(Duration::from_millis(1200));
    let b = lab.ip("pod-b");
    let starts = lab.sh_ok("pod-a", &format!("{} pulses {b} 9000 3 2000 300 200", labtool()))?;
    thread::sleep(Duration::from_millis(300));
    let out = np.stop()?;
    let injected: Vec<u64> = serde_json::from_str(&starts)?;
    let bursts: Vec<Value> = out
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|r| r["type"] == "burst")
        .collect();
    println!("watch: {} bursts injected, {} burst events", injected.len(), bursts.len());
    assert_eq!(bursts.len(), injected.len(), "{bursts:?}");
    assert!(bursts.iter().all(|b| b["pod"] == "pod-b" && b["interface"] == "eth0"), "{bursts:?}");
    Ok(())
}
