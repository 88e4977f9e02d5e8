//! kfree_skb drops on the real kernel, in the lab, against the kernel's own counters.

mod common;

use std::{thread, time::Duration};

use common::require_root;
use netprobe_tests::{
    lab::Lab,
    netprobe::Running,
    traffic::{firewall, nft_dropped, tcp_closed, udp},
};
use serde_json::Value;

const N: u32 = 25;

/// Lets the kernel finish delivering and netprobe drain (it drains every 100 ms).
fn settle() {
    thread::sleep(Duration::from_millis(400));
}

/// Exact count of `reason` drops for `pod` in a JSON report.
fn count(report: &Value, pod: &str, reason: &str) -> u64 {
    report["drops"]
        .as_array()
        .expect("drops array")
        .iter()
        .filter(|d| d["pod"] == pod && d["reason"] == reason)
        .map(|d| d["count"].as_u64().expect("count"))
        .sum()
}

#[test]
fn closed_ports_are_no_socket_drops_of_the_receiving_pod() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b", "pod-c"])?;
    let ip6 = "fd99::11"; // pod-b
    let before = (
        lab.snmp("pod-b", "Tcp", "OutRsts")?,
        lab.snmp("pod-b", "Udp", "NoPorts")?,
        lab.snmp6("pod-b", "Udp6NoPorts")?,
    );
    let np = Running::start(&["report", "--duration", "10m", "--format", "json"])?;
    tcp_closed(&lab, "pod-a", "pod-b", 8080, N)?;
    udp(&lab, "pod-a", &lab.ip("pod-b").to_string(), 8080, N)?;
    udp(&lab, "pod-a", ip6, 53, N)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let after = (
        lab.snmp("pod-b", "Tcp", "OutRsts")?,
        lab.snmp("pod-b", "Udp", "NoPorts")?,
        lab.snmp6("pod-b", "Udp6NoPorts")?,
    );
    let kernel = (after.0 - before.0) + (after.1 - before.1) + (after.2 - before.2);

    assert_eq!(kernel, 3 * N as u64, "the kernel itself saw every SYN and datagram");
    assert_eq!(count(&report, "pod-b", "NO_SOCKET"), kernel, "report: {report:#}");
    assert_eq!(count(&report, "pod-c", "NO_SOCKET"), 0, "pod-c did nothing");
    assert_eq!(report["health"]["lost_samples"], 0);
    let sites: Vec<&str> = report["locations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["reason"] == "NO_SOCKET")
        .map(|l| l["location"].as_str().unwrap())
        .collect();
    for f in ["tcp_v4_rcv+", "__udp4_lib_rcv+", "__udp6_lib_rcv+"] {
        assert!(sites.iter().any(|s| s.starts_with(f)), "{f} missing from {sites:?}");
    }
    Ok(())
}

#[test]
fn netfilter_drops_match_the_nft_rule_counter() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    firewall(&lab, "pod-a", 5353)?;
    let np = Running::start(&["report", "--duration", "10m", "--format", "json"])?;
    let a = lab.ip("pod-a").to_string();
    udp(&lab, "pod-b", &a, 5353, N)?;
    // Each attempt sends one SYN; the timeout ends it before the first retransmit (1 s).
    lab.sh(
        "pod-b",
        &format!("for i in $(seq 5); do timeout 0.3 bash -c 'exec 3<>/dev/tcp/{a}/5353'; done"),
    )?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;

    let nft_dropped = nft_dropped(&lab, "pod-a")?;
    assert!(nft_dropped >= N as u64 + 5, "nft counted {nft_dropped}");
    assert_eq!(count(&report, "pod-a", "NETFILTER_DROP"), nft_dropped, "report: {report:#}");
    assert_eq!(count(&report, "pod-b", "NETFILTER_DROP"), 0);
    let site = report["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["reason"] == "NETFILTER_DROP")
        .and_then(|l| l["location"].as_str())
        .expect("a NETFILTER_DROP location");
    // nf_hook_slow frees verdict drops; 6.x nf_tables frees its own with a reason.
    assert!(site.starts_with("nf_hook_slow+") || site.starts_with("nft_do_chain+"), "{site}");
    Ok(())
}

#[test]
fn watch_with_pod_shows_only_that_pod() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b", "pod-c"])?;
    let netns_b = lab.netns("pod-b")?;
    let np = Running::start(&["watch", "--pod", "pod-b", "--format", "json"])?;
    tcp_closed(&lab, "pod-a", "pod-b", 8080, N)?;
    tcp_closed(&lab, "pod-b", "pod-c", 8080, N)?;
    udp(&lab, "pod-c", &lab.ip("pod-a").to_string(), 9, N)?;
    settle();
    let out = np.stop()?;
    let records: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let drops: Vec<&Value> = records.iter().filter(|r| r["type"] == "drop").collect();
    for d in &drops {
        assert_eq!(d["pod"], "pod-b", "{d}");
        assert_eq!(d["netns"], netns_b, "{d}");
    }
    let no_socket: Vec<&&Value> = drops.iter().filter(|d| d["reason"] == "NO_SOCKET").collect();
    assert_eq!(no_socket.len(), N as usize, "one sample per SYN to pod-b's closed port");
    let first = no_socket[0];
    assert_eq!(first["proto"], "tcp");
    assert_eq!(first["daddr"], lab.ip("pod-b").to_string());
    assert_eq!(first["dport"], 8080);
    assert_eq!(first["saddr"], lab.ip("pod-a").to_string());
    Ok(())
}

#[test]
fn listen_overflows_match_listen_drops_per_pod_and_port() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    // A server that never accepts, behind a two-slot accept queue (per-netns somaxconn).
    lab.sh_ok("pod-b", "sysctl -qw net.core.somaxconn=2")?;
    let labtool = env!("CARGO_BIN_EXE_labtool");
    let _server = lab.spawn("pod-b", labtool, &["listen", "6000"])?;
    thread::sleep(Duration::from_millis(300));
    let before = (
        lab.snmp("pod-b", "TcpExt", "ListenDrops")?,
        lab.snmp("pod-b", "TcpExt", "ListenOverflows")?,
    );
    let np = Running::start(&["report", "--duration", "10m", "--format", "json"])?;
    let b = lab.ip("pod-b").to_string();
    lab.sh_ok("pod-a", &format!("{labtool} connect-many {b} 6000 20 2500"))?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let after = (
        lab.snmp("pod-b", "TcpExt", "ListenDrops")?,
        lab.snmp("pod-b", "TcpExt", "ListenOverflows")?,
    );
    let (drops, overflows) = (after.0 - before.0, after.1 - before.1);
    assert!(overflows > 10, "the queue must overflow: {overflows}");

    let rows = report["listen_overflows"].as_array().unwrap();
    let counted: u64 =
        rows.iter().filter(|r| r["pod"] == "pod-b").map(|r| r["drops"].as_u64().unwrap()).sum();
    assert_eq!(counted, drops, "netprobe vs ListenDrops of pod-b: {report:#}");
    assert_eq!(drops, overflows, "every drop here is an overflow");
    let row = &rows[0];
    assert_eq!((row["pod"].as_str(), row["port"].as_u64()), (Some("pod-b"), Some(6000)), "{row}");
    assert_eq!(row["max_queue"], 2);
    assert!(rows.iter().all(|r| r["pod"] == "pod-b"), "pod-a listens on nothing: {rows:?}");
    // The clients see it as SYNs that go unanswered.
    let shapes = report["handshake_timeouts"].as_array().unwrap();
    assert!(shapes.iter().any(|h| h["pod"] == "pod-a" && h["dport"] == 6000), "{shapes:?}");
    Ok(())
}
