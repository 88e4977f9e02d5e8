//! Conntrack table full (incidents 02 and 04) against the pod's own conntrack counters, and
//! nf_tables policy drops told apart from it. nf_conntrack_max is global: the lab restores it
//! even when a test fails, and holds the lab lock so no other test runs meanwhile.

mod common;

use std::{thread, time::Duration};

use common::require_root;
use netprobe_tests::{
    lab::Lab,
    netprobe::Running,
    traffic::{firewall, nft_dropped, udp},
};
use serde_json::Value;

const LABTOOL: &str = env!("CARGO_BIN_EXE_labtool");

/// The `drop` column of /proc/net/stat/nf_conntrack in `pod`, summed over CPUs.
fn conntrack_drops(lab: &Lab, pod: &str) -> anyhow::Result<u64> {
    let text = lab.sh_ok(pod, "cat /proc/net/stat/nf_conntrack")?;
    let mut lines = text.lines();
    let col = lines.next().unwrap().split_whitespace().position(|c| c == "drop").unwrap();
    Ok(lines
        .map(|l| u64::from_str_radix(l.split_whitespace().nth(col).unwrap(), 16).unwrap())
        .sum())
}

fn row<'a>(report: &'a Value, pod: &str) -> Option<&'a Value> {
    report["conntrack"].as_array().unwrap().iter().find(|r| r["pod"] == pod)
}

#[test]
fn full_table_drops_match_the_pods_conntrack_counter() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b", "pod-c"])?;
    // Connections into pod-b are tracked there.
    lab.sh_ok(
        "pod-b",
        "nft add table inet np && \
         nft add chain inet np input '{ type filter hook input priority 0; }' && \
         nft add rule inet np input ct state new counter accept",
    )?;
    let _sink = lab.spawn("pod-b", LABTOOL, &["sink", "5005"])?;
    lab.set_sysctl("net.netfilter.nf_conntrack_max", "20")?;
    thread::sleep(Duration::from_millis(300));
    let before = conntrack_drops(&lab, "pod-b")?;
    let np = Running::start(&[
        "report",
        "--duration",
        "10m",
        "--events",
        "drops,conntrack",
        "--format",
        "json",
    ])?;
    let b = lab.ip("pod-b").to_string();
    lab.sh_ok("pod-a", &format!("{LABTOOL} connect-many {b} 5005 40 2500"))?;
    thread::sleep(Duration::from_millis(1500));
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let kernel = conntrack_drops(&lab, "pod-b")? - before;

    assert!(kernel > 20, "the table must overflow: {kernel}");
    let b_row = row(&report, "pod-b").unwrap_or_else(|| panic!("no pod-b row: {report:#}"));
    assert_eq!(b_row["table_full_drops"], kernel, "{b_row}");
    // The cross-check: packets netprobe saw freed by a hook verdict in pod-b.
    assert_eq!(b_row["verdict_drops"], kernel, "{b_row}");
    assert_eq!(b_row["rule_drops"], 0);
    assert_eq!(
        (b_row["peak_count"].as_u64(), b_row["max"].as_u64()),
        (Some(20), Some(20)),
        "{b_row}"
    );
    assert!(b_row["table_full_messages"].as_u64().unwrap() >= 1, "{b_row}");
    for pod in ["pod-a", "pod-c"] {
        assert!(row(&report, pod).is_none_or(|r| r["table_full_drops"] == 0), "{report:#}");
    }
    Ok(())
}

#[test]
fn nft_rule_drops_are_policy_not_conntrack() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    firewall(&lab, "pod-a", 5353)?;
    let np = Running::start(&[
        "report",
        "--duration",
        "10m",
        "--events",
        "drops,conntrack",
        "--format",
        "json",
    ])?;
    udp(&lab, "pod-b", &lab.ip("pod-a").to_string(), 5353, 12)?;
    thread::sleep(Duration::from_millis(400));
    let report: Value = serde_json::from_str(&np.stop()?)?;

    let a_row = row(&report, "pod-a").unwrap_or_else(|| panic!("no pod-a row: {report:#}"));
    assert_eq!(a_row["rule_drops"], nft_dropped(&lab, "pod-a")?, "{a_row}");
    assert_eq!(
        (a_row["table_full_drops"].as_u64(), a_row["verdict_drops"].as_u64()),
        (Some(0), Some(0))
    );
    Ok(())
}
