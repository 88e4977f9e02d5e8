//! TCP retransmits and handshake timeouts (incidents 02 and 05), against each pod's own
//! TcpRetransSegs.

mod common;

use std::{thread, time::Duration};

use common::require_root;
use netprobe_tests::{lab::Lab, netprobe::Running};
use serde_json::Value;

const LABTOOL: &str = env!("CARGO_BIN_EXE_labtool");

/// Retransmitted segments netprobe counted for `pod`, all retransmit kinds together.
fn retransmits(report: &Value, pod: &str) -> u64 {
    report["tcp"]
        .as_array()
        .expect("tcp counts")
        .iter()
        .filter(|t| t["pod"] == pod && t["event"].as_str().unwrap().ends_with("retransmit"))
        .map(|t| t["count"].as_u64().unwrap())
        .sum()
}

fn retrans_segs(lab: &Lab, pods: &[&str]) -> anyhow::Result<Vec<u64>> {
    pods.iter().map(|p| lab.snmp(p, "Tcp", "RetransSegs")).collect()
}

#[test]
fn lossy_path_retransmits_match_tcp_retrans_segs_per_pod() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b", "pod-c"])?;
    // One in ten inbound data segments to the server is lost.
    lab.sh_ok(
        "pod-b",
        "nft add table inet np && \
         nft add chain inet np input '{ type filter hook input priority 0; }' && \
         nft add rule inet np input tcp dport 5001 numgen random mod 10 == 0 drop",
    )?;
    let _sink = lab.spawn("pod-b", LABTOOL, &["sink", "5001"])?;
    thread::sleep(Duration::from_millis(300));
    let pods = ["pod-a", "pod-b", "pod-c"];
    let before = retrans_segs(&lab, &pods)?;
    let np =
        Running::start(&["report", "--duration", "10m", "--events", "tcp", "--format", "json"])?;
    let b = lab.ip("pod-b").to_string();
    lab.sh_ok("pod-a", &format!("timeout 60 {LABTOOL} send {b} 5001 4000000"))?;
    thread::sleep(Duration::from_millis(400));
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let after = retrans_segs(&lab, &pods)?;

    for (i, pod) in pods.iter().enumerate() {
        assert_eq!(retransmits(&report, pod), after[i] - before[i], "{pod}: {report:#}");
    }
    assert!(after[0] - before[0] > 10, "the lossy path must make the client retransmit");
    assert_eq!(report["families"][0]["family"], "tcp");
    Ok(())
}

#[test]
fn lost_syn_acks_show_as_a_handshake_timeout() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    // The NLB-hairpin shape: the server's SYN-ACKs never make it back.
    lab.sh_ok(
        "pod-b",
        "nft add table inet np && \
         nft add chain inet np output '{ type filter hook output priority 0; }' && \
         nft add rule inet np output tcp flags '& (syn | ack) == syn | ack' drop",
    )?;
    let _sink = lab.spawn("pod-b", LABTOOL, &["sink", "5002"])?;
    thread::sleep(Duration::from_millis(300));
    let pods = ["pod-a", "pod-b"];
    let before = retrans_segs(&lab, &pods)?;
    let np =
        Running::start(&["report", "--duration", "10m", "--events", "tcp", "--format", "json"])?;
    let b = lab.ip("pod-b").to_string();
    // SYN retransmits come at 1 s and 3 s; 3.5 s sees two of them.
    let out = lab.sh("pod-a", &format!("{LABTOOL} connect {b} 5002 3500"))?;
    assert!(!out.status.success(), "the handshake must not complete");
    thread::sleep(Duration::from_millis(400));
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let after = retrans_segs(&lab, &pods)?;

    assert_eq!(retransmits(&report, "pod-a"), after[0] - before[0], "{report:#}");
    assert_eq!(retransmits(&report, "pod-b"), after[1] - before[1], "{report:#}");
    let timeouts = report["handshake_timeouts"].as_array().unwrap();
    let hit = timeouts
        .iter()
        .find(|h| h["pod"] == "pod-a" && h["daddr"] == b && h["dport"] == 5002)
        .unwrap_or_else(|| panic!("no handshake timeout for pod-a -> {b}:5002: {report:#}"));
    assert!(hit["syn_retransmits"].as_u64().unwrap() >= 2, "{hit}");
    assert!(timeouts.iter().all(|h| h["pod"] == "pod-a"), "{timeouts:?}");
    Ok(())
}
