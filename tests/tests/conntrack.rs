//! Conntrack table full (incidents 02 and 04) against the pod's own conntrack counters, and
//! nf_tables policy drops told apart from it. nf_conntrack_max is global: the lab restores it
//! even when a test fails, and holds the lab lock so no other test runs meanwhile. While it is
//! 20, every netns's table is capped at 20 entries, the host's included: a host that tracks
//! connections of its own would have them dropped for the few seconds of the test, so the
//! test first checks that the host's table is nearly empty, and keeps the host out of its
//! assertions.

mod common;

use std::{thread, time::Duration};

use common::{incident, settle};
use netprobe_tests::{
    incidents::{labtool, DNS_VIP},
    lab::Lab,
    netprobe::Running,
    traffic::nft_dropped,
};
use serde_json::Value;

/// A column of /proc/net/stat/nf_conntrack in `pod` (`drop`, `insert_failed`, `clashres`),
/// summed over CPUs.
fn conntrack_stat(lab: &Lab, pod: &str, column: &str) -> anyhow::Result<u64> {
    let text = lab.sh_ok(pod, "cat /proc/net/stat/nf_conntrack")?;
    let mut lines = text.lines();
    let col = lines.next().unwrap().split_whitespace().position(|c| c == column).unwrap();
    Ok(lines
        .map(|l| u64::from_str_radix(l.split_whitespace().nth(col).unwrap(), 16).unwrap())
        .sum())
}

fn conntrack_drops(lab: &Lab, pod: &str) -> anyhow::Result<u64> {
    conntrack_stat(lab, pod, "drop")
}

/// The host's own conntrack table holds (almost) nothing: capping every table at a few dozen
/// entries drops none of the host's connections.
fn assert_host_table_nearly_empty() -> anyhow::Result<()> {
    let host: u64 =
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")?.trim().parse()?;
    assert!(
        host < 10,
        "the host tracks {host} connections: a lab nf_conntrack_max would drop them"
    );
    Ok(())
}

fn row<'a>(report: &'a Value, pod: &str) -> Option<&'a Value> {
    report["conntrack"].as_array().unwrap().iter().find(|r| r["pod"] == pod)
}

#[test]
fn full_table_drops_match_the_pods_conntrack_counter() -> anyhow::Result<()> {
    let (lab, _server, incident) = incident("conntrack-full")?;
    let host_count: u64 =
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")?.trim().parse()?;
    assert!(
        host_count < 10,
        "the host tracks {host_count} connections: nf_conntrack_max 20 would drop its own"
    );
    let before = conntrack_drops(&lab, "pod-b")?;
    let np = Running::report(incident.events)?;
    (incident.provoke)(&lab)?;
    // The last poll of the pods' conntrack counters must come after the last drop.
    thread::sleep(Duration::from_millis(1500));
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);
    let kernel = conntrack_drops(&lab, "pod-b")? - before;
    println!(
        "pod-b conntrack drops: kernel {kernel}; netprobe {}",
        row(&report, "pod-b").map_or(Value::Null, |r| r.clone())
    );

    assert!(kernel > 20, "the table must overflow: {kernel}");
    let b_row = row(&report, "pod-b").unwrap_or_else(|| panic!("no pod-b row: {report:#}"));
    assert_eq!(b_row["table_full_drops"], kernel, "{b_row}");
    // What netprobe itself counted in the kernel: packets freed by a hook verdict in pod-b
    // (its per-CPU drop counts by location), and the same drops by reason.
    assert_eq!(b_row["verdict_drops"], kernel, "{b_row}");
    assert_eq!(b_row["rule_drops"], 0);
    let by_reason: u64 = report["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .filter(|d| d["pod"] == "pod-b" && d["reason"] == "NETFILTER_DROP")
        .map(|d| d["count"].as_u64().expect("count"))
        .sum();
    println!("pod-b NETFILTER_DROP: netprobe {by_reason}, conntrack drop {kernel}");
    assert_eq!(by_reason, kernel, "{:#}", report["drops"]);
    let at_hook: u64 = report["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .filter(|l| l["location"].as_str().unwrap().starts_with("nf_hook_slow+"))
        .map(|l| l["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(at_hook, kernel, "{:#}", report["locations"]);
    assert_eq!(
        (b_row["peak_count"].as_u64(), b_row["max"].as_u64()),
        (Some(20), Some(20)),
        "{b_row}"
    );
    // The kernel's console line is rate-limited: at least one, at most one per drop.
    let messages = b_row["table_full_messages"].as_u64().expect("table_full_messages");
    assert!((1..=kernel).contains(&messages), "{b_row}");
    for pod in ["pod-a", "pod-c"] {
        assert!(row(&report, pod).is_none_or(|r| r["table_full_drops"] == 0), "{report:#}");
    }
    Ok(())
}

#[test]
fn nft_rule_drops_are_policy_not_conntrack() -> anyhow::Result<()> {
    let (lab, _running, incident) = incident("netfilter-drop")?;
    let np = Running::report(incident.events)?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);

    let a_row = row(&report, "pod-a").unwrap_or_else(|| panic!("no pod-a row: {report:#}"));
    let nft = nft_dropped(&lab, "pod-a")?;
    println!("pod-a rule drops: netprobe {}, nft counters {nft}", a_row["rule_drops"]);
    assert_eq!(nft, 30, "25 datagrams and 5 SYNs");
    assert_eq!(a_row["rule_drops"], nft, "{a_row}");
    assert_eq!(
        (a_row["table_full_drops"].as_u64(), a_row["verdict_drops"].as_u64()),
        (Some(0), Some(0))
    );
    Ok(())
}

#[test]
fn a_table_three_quarters_full_is_near_full_before_it_drops() -> anyhow::Result<()> {
    // nf_conntrack_max 40 (global, restored by the lab; see the top of this file) and 32
    // connections into pod-b, whose nft rule makes conntrack track them: 80% full, no drop.
    common::require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    netprobe_tests::traffic::nft(&lab, "pod-b", "input", &["ct state new counter accept"])?;
    let tool = netprobe_tests::incidents::labtool();
    let _server = lab.spawn("pod-b", &tool, &["sink", "5009"])?;
    lab.wait_listening("pod-b", 5009, false)?;
    assert_host_table_nearly_empty()?;
    lab.set_sysctl("net.netfilter.nf_conntrack_max", "40")?;
    let drops_before = conntrack_drops(&lab, "pod-b")?;
    let np = Running::report("drops,conntrack")?;
    let b = lab.ip("pod-b").to_string();
    let ok = lab.sh_ok("pod-a", &format!("{tool} connect-many {b} 5009 32 2500"))?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let count: u64 =
        lab.sh_ok("pod-b", "cat /proc/sys/net/netfilter/nf_conntrack_count")?.trim().parse()?;
    let dropped = conntrack_drops(&lab, "pod-b")? - drops_before;
    common::assert_best_tiers(&report);
    common::docs::check_report(&report);
    let b_row = row(&report, "pod-b").unwrap_or_else(|| panic!("no pod-b row: {report:#}"));
    println!(
        "{} connected; pod-b nf_conntrack_count {count}, drop {dropped}; netprobe {b_row}",
        ok.trim()
    );
    assert_eq!(ok.trim(), "32");
    assert_eq!((count, dropped), (32, 0), "80% full, nothing dropped");
    assert_eq!((b_row["peak_count"].as_u64(), b_row["max"].as_u64()), (Some(count), Some(40)));
    assert_eq!(b_row["table_full_drops"], 0, "{b_row}");
    let first = &report["findings"][0];
    assert_eq!(first["id"], "conntrack_near_full", "{:#}", report["findings"]);
    assert_eq!(first["pods"], serde_json::json!(["pod-b"]), "{first}");
    assert_eq!(first["severity"], "warning", "{first}");
    Ok(())
}

/// The DNS conntrack race (incidents/conntrack-race has the kernel's side of it). First the
/// shape of the well-known A/AAAA race, one socket and two threads through the DNAT: 6.18
/// resolves every such clash (`clashres`), none fails. Then two clients on one port, which
/// the masquerade cannot tell apart before either is confirmed: those inserts fail, and
/// netprobe's finding carries pod-a's own insert_failed.
#[test]
fn insert_races_match_the_pods_conntrack_counter() -> anyhow::Result<()> {
    let (lab, _server, incident) = incident("conntrack-race")?;
    let stat = |column| conntrack_stat(&lab, "pod-a", column);
    let (a, tool) = (lab.ip("pod-a").to_string(), labtool());
    let (clashes, failed) = (stat("clashres")?, stat("insert_failed")?);
    lab.sh_ok("pod-a", &format!("{tool} udp-race 500 {DNS_VIP} 53 {a}"))?;
    let (clashes, failed) = (stat("clashres")? - clashes, stat("insert_failed")? - failed);
    println!("one flow from two threads, 500 rounds: clashres +{clashes}, insert_failed +{failed}");
    assert!(clashes > 0, "the two threads never raced");
    assert_eq!(failed, 0, "6.18 resolves a clash on the original tuple");

    let (failed, drops) = (stat("insert_failed")?, stat("drop")?);
    let np = Running::report(incident.events)?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let kernel = stat("insert_failed")? - failed;
    let a_row = row(&report, "pod-a").unwrap_or_else(|| panic!("no pod-a row: {report:#}"));
    println!("two clients, one port, 2000 rounds: pod-a insert_failed +{kernel}; netprobe {a_row}");
    common::assert_finding(&report, incident);
    assert!(kernel > 0, "no insert failed");
    // The kernel counts each such loser in `drop` too; none of them is a full table.
    assert_eq!(stat("drop")? - drops, kernel);
    assert_eq!(a_row["insert_failed"], kernel, "{a_row}");
    assert_eq!(a_row["verdict_drops"], kernel, "{a_row}");
    assert_eq!(a_row["table_full_drops"], 0, "{a_row}");
    let first = &report["findings"][0];
    assert_eq!(first["evidence"][0]["kernel"], kernel, "{first:#}");
    let ids: Vec<&Value> =
        report["findings"].as_array().unwrap().iter().map(|f| &f["id"]).collect();
    assert!(!ids.contains(&&Value::from("conntrack_table_full")), "{ids:?}");
    Ok(())
}
