//! TCP retransmits and handshake timeouts (incidents 02 and 05), against each pod's own
//! TcpRetransSegs.

mod common;

use common::{incident, settle};
use netprobe_tests::{lab::Lab, netprobe::Running};
use serde_json::Value;

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

/// What a run gives: the report, each pod's TcpRetransSegs growth, and the lab.
type Run = (Value, Vec<(&'static str, u64)>, Lab);

/// Runs an incident under `netprobe report --events tcp`.
fn run(name: &str) -> anyhow::Result<Run> {
    let (lab, _running, incident) = incident(name)?;
    let segs = |lab: &Lab| -> anyhow::Result<Vec<u64>> {
        incident.pods.iter().map(|p| lab.snmp(p, "Tcp", "RetransSegs")).collect()
    };
    let before = segs(&lab)?;
    let np = Running::report("tcp")?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);
    let grown: Vec<u64> = segs(&lab)?.iter().zip(&before).map(|(a, b)| a - b).collect();
    let per_pod = incident.pods.iter().copied().zip(grown).collect();
    Ok((report, per_pod, lab))
}

#[test]
fn lossy_path_retransmits_match_tcp_retrans_segs_per_pod() -> anyhow::Result<()> {
    let (report, kernel, _lab) = run("lossy-path")?;
    for (pod, segs) in &kernel {
        println!(
            "{pod} retransmitted segments: netprobe {}, TcpRetransSegs {segs}",
            retransmits(&report, pod)
        );
        assert_eq!(retransmits(&report, pod), *segs, "{pod}: {report:#}");
    }
    assert!(kernel[0].1 > 10, "the lossy path must make the client retransmit");
    assert_eq!(report["families"][0]["family"], "tcp");
    Ok(())
}

#[test]
fn lost_syn_acks_show_as_a_handshake_timeout() -> anyhow::Result<()> {
    let (report, kernel, lab) = run("handshake-timeout")?;
    for (pod, segs) in &kernel {
        println!(
            "{pod} retransmitted segments: netprobe {}, TcpRetransSegs {segs}",
            retransmits(&report, pod)
        );
        assert_eq!(retransmits(&report, pod), *segs, "{pod}: {report:#}");
    }
    let b = lab.ip("pod-b").to_string();
    let timeouts = report["handshake_timeouts"].as_array().unwrap();
    let hit = timeouts
        .iter()
        .find(|h| h["pod"] == "pod-a" && h["daddr"] == b && h["dport"] == 5002)
        .unwrap_or_else(|| panic!("no handshake timeout for pod-a -> {b}:5002: {report:#}"));
    assert!(hit["syn_retransmits"].as_u64().unwrap() >= 2, "{hit}");
    assert!(timeouts.iter().all(|h| h["pod"] == "pod-a"), "{timeouts:?}");
    Ok(())
}
