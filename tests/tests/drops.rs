//! kfree_skb drops on the real kernel, in the lab, against the kernel's own counters.

mod common;

use common::{incident, require_root, settle};
use netprobe_tests::{
    lab::Lab,
    netprobe::Running,
    traffic::{nft_dropped, tcp_closed, udp},
};
use serde_json::Value;

const N: u32 = 25;

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
    let (lab, _running, incident) = incident("closed-port")?;
    let kernel_counters = |lab: &Lab| -> anyhow::Result<u64> {
        Ok(lab.snmp("pod-b", "Tcp", "OutRsts")?
            + lab.snmp("pod-b", "Udp", "NoPorts")?
            + lab.snmp6("pod-b", "Udp6NoPorts")?)
    };
    let before = kernel_counters(&lab)?;
    let np = Running::report(incident.events)?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);
    let kernel = kernel_counters(&lab)? - before;

    println!("pod-b NO_SOCKET: netprobe {}, kernel {kernel}", count(&report, "pod-b", "NO_SOCKET"));
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
    let (lab, _running, incident) = incident("netfilter-drop")?;
    let np = Running::report("drops")?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);

    let nft_dropped = nft_dropped(&lab, "pod-a")?;
    println!(
        "pod-a NETFILTER_DROP: netprobe {}, nft {nft_dropped}",
        count(&report, "pod-a", "NETFILTER_DROP")
    );
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
    let (lab, _server, incident) = incident("listen-overflow")?;
    let counters = |lab: &Lab| -> anyhow::Result<(u64, u64)> {
        Ok((
            lab.snmp("pod-b", "TcpExt", "ListenDrops")?,
            lab.snmp("pod-b", "TcpExt", "ListenOverflows")?,
        ))
    };
    let before = counters(&lab)?;
    let np = Running::report(incident.events)?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);
    let after = counters(&lab)?;
    let (drops, overflows) = (after.0 - before.0, after.1 - before.1);
    assert!(overflows > 10, "the queue must overflow: {overflows}");

    let pods = report["listen_drops"].as_array().unwrap();
    let b_row = pods.iter().find(|r| r["pod"] == "pod-b").unwrap_or_else(|| panic!("{report:#}"));
    println!("pod-b: netprobe {b_row}; ListenOverflows {overflows}, ListenDrops {drops}");
    assert_eq!(b_row["listen_overflows"], overflows, "{report:#}");
    assert_eq!(b_row["listen_drops"], drops, "{report:#}");
    assert!(pods.iter().all(|r| r["pod"] == "pod-b"), "pod-a listens on nothing: {pods:?}");

    // Per listening socket: its own sk_drops, all on pod-b's :6000.
    let rows = report["listen_overflows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["pod"] == "pod-b" && r["port"] == 6000), "{rows:?}");
    let counted: u64 = rows.iter().map(|r| r["drops"].as_u64().unwrap()).sum();
    assert!(
        counted >= drops,
        "the socket counts every ListenDrop and a few more: {counted} < {drops}"
    );
    assert_eq!(rows[0]["max_queue"], 2);
    // The clients see it as SYNs that go unanswered.
    let shapes = report["handshake_timeouts"].as_array().unwrap();
    assert!(shapes.iter().any(|h| h["pod"] == "pod-a" && h["dport"] == 6000), "{shapes:?}");
    Ok(())
}
