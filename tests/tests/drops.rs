//! kfree_skb drops on the real kernel, in the lab, against the kernel's own counters.

mod common;

use std::{thread, time::Duration};

use anyhow::Context;
use common::{incident, require_root, settle};
use netprobe_tests::{
    incidents::labtool,
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
    // 25 datagrams, and 5 connects of 0.3 s: one SYN each, the first resend being due at 1 s.
    assert_eq!(nft_dropped, N as u64 + 5, "nft counted {nft_dropped}");
    assert_eq!(count(&report, "pod-a", "NETFILTER_DROP"), nft_dropped, "report: {report:#}");
    assert_eq!(count(&report, "pod-b", "NETFILTER_DROP"), 0);
    let sites: Vec<(&str, u64)> = report["locations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["reason"] == "NETFILTER_DROP")
        .map(|l| (l["location"].as_str().expect("location"), l["count"].as_u64().expect("count")))
        .collect();
    // On 6.18 nf_tables frees its rule drops itself, in nft_do_chain, not in nf_hook_slow.
    assert_eq!(sites.len(), 1, "{sites:?}");
    assert!(sites[0].0.starts_with("nft_do_chain+"), "{sites:?}");
    assert_eq!(sites[0].1, nft_dropped, "{sites:?}");
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
    records.iter().for_each(common::docs::check_watch_record);
    let drops: Vec<&Value> = records.iter().filter(|r| r["type"] == "drop").collect();
    for d in &drops {
        assert_eq!(d["pod"], "pod-b", "{d}");
        assert_eq!(d["netns"], netns_b, "{d}");
    }
    let no_socket: Vec<&&Value> = drops.iter().filter(|d| d["reason"] == "NO_SOCKET").collect();
    assert_eq!(no_socket.len(), N as usize, "one sample per SYN to pod-b's closed port");
    // Every one of them is a SYN from pod-a to pod-b's closed port, and nothing else dropped
    // in pod-b.
    let (a, b) = (lab.ip("pod-a").to_string(), lab.ip("pod-b").to_string());
    for d in &no_socket {
        assert_eq!(
            (d["l3"].as_str(), d["proto"].as_str(), d["saddr"].as_str(), d["daddr"].as_str()),
            (Some("ipv4"), Some("tcp"), Some(a.as_str()), Some(b.as_str())),
            "{d}"
        );
        assert_eq!(d["dport"], 8080, "{d}");
        assert!(d["location"].as_str().unwrap().starts_with("tcp_v4_rcv+"), "{d}");
    }
    assert_eq!(drops.len(), N as usize, "{drops:?}");
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
    // The listener's own drop counter (sk_drops), read independently of netprobe's sock_diag
    // poll: the `d` of `ss -m`.
    let sk_drops = |lab: &Lab| -> anyhow::Result<u64> {
        let out = lab.sh_ok("pod-b", "ss -Hltnm 'sport = :6000'")?;
        let d = out.split([',', ')']).find_map(|f| f.trim().strip_prefix('d'));
        Ok(d.with_context(|| format!("no sk_drops in {out}"))?.parse()?)
    };
    let syn_retrans = |lab: &Lab| lab.snmp("pod-a", "TcpExt", "TCPSynRetrans");
    let (before, sk_before, syn_before) = (counters(&lab)?, sk_drops(&lab)?, syn_retrans(&lab)?);
    let np = Running::report(incident.events)?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);
    let after = counters(&lab)?;
    let (drops, overflows) = (after.0 - before.0, after.1 - before.1);
    let sk_grown = sk_drops(&lab)? - sk_before;
    let syn_grown = syn_retrans(&lab)? - syn_before;
    assert!(overflows > 10, "the queue must overflow: {overflows}");

    let pods = report["listen_drops"].as_array().unwrap();
    let b_row = pods.iter().find(|r| r["pod"] == "pod-b").unwrap_or_else(|| panic!("{report:#}"));
    println!("pod-b: netprobe {b_row}; ListenOverflows {overflows}, ListenDrops {drops}");
    assert_eq!(b_row["listen_overflows"], overflows, "{report:#}");
    assert_eq!(b_row["listen_drops"], drops, "{report:#}");
    assert!(pods.iter().all(|r| r["pod"] == "pod-b"), "pod-a listens on nothing: {pods:?}");

    // Per listening socket, all on pod-b's :6000: its sk_drops growth as the test read it.
    // It counts every ListenDrop, plus the discard of a handshake's last ACK that found the
    // queue full (counted once more on the socket, and once as a ListenDrop), so between
    // ListenDrops and twice that.
    let rows = report["listen_overflows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["pod"] == "pod-b" && r["port"] == 6000), "{rows:?}");
    let counted: u64 = rows.iter().map(|r| r["drops"].as_u64().expect("drops")).sum();
    println!("pod-b :6000 sk_drops: netprobe {counted}, ss -m {sk_grown}");
    assert_eq!(counted, sk_grown, "{rows:?}");
    assert!((drops..=2 * drops).contains(&counted), "{counted} vs ListenDrops {drops}");
    assert!(rows.iter().all(|r| r["max_queue"] == 2), "somaxconn 2: {rows:?}");
    // What netprobe itself counts in the kernel: the clients resend the SYNs the full queue
    // dropped, each one a syn_retransmit of pod-a, exactly its TCPSynRetrans.
    let syn = report["tcp"]
        .as_array()
        .expect("tcp counts")
        .iter()
        .filter(|t| t["pod"] == "pod-a" && t["event"] == "syn_retransmit")
        .map(|t| t["count"].as_u64().expect("count"))
        .sum::<u64>();
    println!("pod-a syn_retransmit: netprobe {syn}, TCPSynRetrans {syn_grown}");
    assert_eq!(syn, syn_grown, "{:#}", report["tcp"]);
    assert!(syn_grown > 0, "the dropped SYNs must be resent");
    // The clients see it as SYNs that go unanswered: every such destination is pod-b:6000.
    let shapes = report["handshake_timeouts"].as_array().unwrap();
    let b = lab.ip("pod-b").to_string();
    assert!(!shapes.is_empty(), "{report:#}");
    for h in shapes {
        assert_eq!(
            (h["pod"].as_str(), h["daddr"].as_str()),
            (Some("pod-a"), Some(b.as_str())),
            "{h}"
        );
        assert_eq!(h["dport"], 6000, "{h}");
    }
    let resent: u64 = shapes.iter().map(|h| h["syn_retransmits"].as_u64().unwrap()).sum();
    assert!(resent <= syn, "samples of SYNs resent twice or more: {resent} of {syn}");
    Ok(())
}

#[test]
fn report_with_pod_counts_only_that_pod_and_samples_no_drops() -> anyhow::Result<()> {
    // Drops in all three pods; `--pod pod-b` filters in the kernel, so the samples netprobe
    // receives are pod-b's alone, as many as pod-b's own kernel counters say it dropped.
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b", "pod-c"])?;
    let kernel = |lab: &Lab| -> anyhow::Result<u64> {
        Ok(lab.snmp("pod-b", "Tcp", "OutRsts")? + lab.snmp("pod-b", "Udp", "NoPorts")?)
    };
    let before = kernel(&lab)?;
    let args = ["report", "--duration", "10m", "--events", "drops", "--pod", "pod-b"];
    let np = Running::start(&[&args[..], &["--format", "json"]].concat())?;
    tcp_closed(&lab, "pod-a", "pod-b", 8080, N)?;
    tcp_closed(&lab, "pod-b", "pod-c", 8080, N)?;
    udp(&lab, "pod-c", &lab.ip("pod-a").to_string(), 9, 2 * N)?;
    udp(&lab, "pod-a", &lab.ip("pod-b").to_string(), 9, N)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let grown = kernel(&lab)? - before;
    common::assert_best_tiers(&report);
    common::docs::check_report(&report);
    let rows = report["drops"].as_array().expect("drops");
    let pods: Vec<&Value> = rows.iter().map(|d| &d["pod"]).collect();
    let counted = count(&report, "pod-b", "NO_SOCKET");
    println!(
        "--pod pod-b: samples {}, pod-b NO_SOCKET {counted}, OutRsts + NoPorts {grown}; rows of {pods:?}",
        report["samples"]
    );
    assert_eq!(grown, 2 * N as u64);
    assert_eq!(counted, grown, "{report:#}");
    assert!(pods.iter().all(|p| *p == "pod-b"), "{pods:?}");
    assert_eq!(report["samples"], 0, "a report counts drops and never samples them");
    assert_eq!(report["pod"], "pod-b");
    Ok(())
}

/// Findings that name one of `pods` (the host and other labs may have their own).
fn findings_of<'a>(report: &'a Value, pods: &[&str]) -> Vec<&'a Value> {
    let names = |f: &Value| f["pods"].as_array().cloned().unwrap_or_default();
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| names(f).iter().any(|p| pods.iter().any(|q| p == q)))
        .collect()
}

#[test]
fn background_traffic_is_counted_but_only_a_real_storm_is_a_finding() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b", "pod-c"])?;
    // pod-a is a node's chatter: IPv6 multicast to a group nobody joined, IPv4 multicast and
    // broadcast to ports nothing listens on, and frames for a MAC no pod has, which the bridge
    // floods to every pod.
    lab.sh_ok(
        "pod-a",
        "ip route add 224.0.0.0/4 dev eth0 && \
         ip neigh add 10.99.0.99 lladdr 02:00:00:00:00:99 dev eth0",
    )?;
    let ifindex = lab.sh_ok("pod-a", "cat /sys/class/net/eth0/ifindex")?;
    let ignored_multi = |pod| lab.snmp(pod, "Udp", "IgnoredMulti");
    let before = ignored_multi("pod-b")?;
    let np = Running::report("drops")?;
    let noise = lab.spawn(
        "pod-a",
        &labtool(),
        &[
            "noise",
            "30",
            "50",
            &format!("[ff02::1:3%{}]:5355", ifindex.trim()),
            "224.0.0.251:5353",
            "10.99.0.255:9999",
            "10.99.0.99:9999",
        ],
    )?;
    thread::sleep(Duration::from_secs(15));
    // Halfway through, a real storm in pod-c: UDP to a port it does not listen on.
    let c = lab.ip("pod-c").to_string();
    lab.sh_ok("pod-a", &format!("{} blast {c} 9 2000", labtool()))?;
    thread::sleep(Duration::from_secs(16));
    drop(noise);
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let ignored = ignored_multi("pod-b")? - before;

    // pod-b's drops by `location reason`, from the timeline.
    let locations: Vec<(String, u64)> = report["timeline"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metric"] == "drop_location" && s["pod"] == "pod-b")
        .map(|s| {
            let total = s["values"].as_array().unwrap().iter().filter_map(Value::as_u64).sum();
            (s["label"].as_str().unwrap().to_owned(), total)
        })
        .collect();
    println!("pod-b drops: {locations:?}; the kernel's Udp IgnoredMulti {ignored}");
    // Still counted: about 30 s x 50/s of each kind reached pod-b.
    assert!(count(&report, "pod-b", "NOT_SPECIFIED") >= 2 * 1400, "{locations:?}");
    assert!(count(&report, "pod-b", "OTHERHOST") >= 1400, "{locations:?}");
    let at = |f: &str| -> u64 {
        locations.iter().filter(|(l, _)| l.starts_with(f)).map(|(_, n)| n).sum()
    };
    // mcast_deliver may be inlined into the receive function: its only reasonless drop there.
    let udp_background = at("__udp4_lib_mcast_deliver+")
        + locations
            .iter()
            .filter(|(l, _)| l.starts_with("__udp4_lib_rcv+") && l.ends_with(" NOT_SPECIFIED"))
            .map(|(_, n)| n)
            .sum::<u64>();
    assert_eq!(udp_background, ignored, "the kernel's own count of these: {locations:?}");

    let lab_findings = findings_of(&report, &["pod-a", "pod-b", "pod-c"]);
    let ids: Vec<String> =
        lab_findings.iter().map(|f| format!("{} {}", f["id"], f["pods"])).collect();
    println!("lab findings: {ids:?}");
    let first = lab_findings.first().expect("the storm's finding");
    assert_eq!((&first["id"], &first["pods"][0]), (&"packet_drops".into(), &"pod-c".into()));
    assert!(first["summary"].as_str().unwrap().contains("NO_SOCKET"), "{first}");
    assert_eq!(lab_findings.len(), 1, "background is never a finding: {ids:?}");
    Ok(())
}

#[test]
fn rps_blast_is_exact_or_says_kernel_differs() {
    // Issue 10: UDP at a closed port of pod-b, whose receive queue RPS steers to CPU 1, with a
    // tiny backlog. Packets processed in a task's context where no BPF program runs are
    // counted by Udp NoPorts and seen by no hook (docs/findings.md): then netprobe's count is
    // lower, and its finding must say so rather than "confirmed".
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"]).unwrap();
    lab.sh_ok("pod-b", "echo 2 > /sys/class/net/eth0/queues/rx-0/rps_cpus").unwrap();
    lab.set_sysctl("net.core.netdev_max_backlog", "8").unwrap();
    let no_ports = |lab: &Lab| lab.snmp("pod-b", "Udp", "NoPorts").unwrap();
    let before = no_ports(&lab);
    let np = Running::report("drops").unwrap();
    let b = lab.ip("pod-b").to_string();
    lab.sh_ok("pod-a", &format!("taskset -c 0 {} blast {b} 9 200000", labtool())).unwrap();
    settle();
    let report: Value = serde_json::from_str(&np.stop().unwrap()).unwrap();
    let kernel = no_ports(&lab) - before;
    let counted = count(&report, "pod-b", "NO_SOCKET");
    let f = findings_of(&report, &["pod-b"])
        .into_iter()
        .find(|f| f["id"] == "packet_drops")
        .unwrap_or_else(|| panic!("no packet_drops for pod-b: {:#}", report["findings"]))
        .clone();
    let gap = kernel as i64 - counted as i64;
    println!(
        "RPS blast: pod-b Udp NoPorts {kernel}, netprobe NO_SOCKET {counted}, gap {gap} \
         ({:.3}%); health {}; finding {} {}",
        100.0 * gap as f64 / kernel as f64,
        report["health"],
        f["confidence"],
        f["discrepancy"]
    );
    assert!(kernel > 100_000, "the blast reached pod-b's UDP");
    let row = f["evidence"].as_array().unwrap().iter().find(|e| !e["kernel"].is_null()).unwrap();
    assert_eq!(row["kernel"], kernel, "the report's kernel counter is the one read here: {f:#}");
    assert_eq!(row["netprobe"], counted, "{f:#}");
    // netprobe never counts more than the kernel; how much less depends on how long such
    // tasks ran on CPU 1 (0 to 3% on this project's host).
    assert!(counted <= kernel, "{f:#}");
    if counted == kernel {
        assert_eq!((&f["confidence"], &f["discrepancy"]), (&"confirmed".into(), &Value::Null));
    } else {
        assert_eq!(f["confidence"], "kernel_differs", "{f:#}");
        let why = f["discrepancy"].as_str().unwrap();
        assert!(why.starts_with(&format!("netprobe {counted}, kernel {kernel} ")), "{why}");
    }
}

#[test]
fn a_kernel_counter_that_differs_by_construction_is_not_confirmed() {
    // pod-b's NO_SOCKET storm, next to resets pod-b sends with no drop at all: a listener that
    // never accepted closes with 40 established children in its queue, and each is reset.
    // The finding's kernel counter (Udp NoPorts + Tcp OutRsts) is then 40 above netprobe's
    // NO_SOCKET count, and the finding must say so.
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"]).unwrap();
    let listener = lab.spawn("pod-b", &labtool(), &["listen", "6001"]).unwrap();
    lab.wait_listening("pod-b", 6001, false).unwrap();
    let resets = |lab: &Lab| lab.snmp("pod-b", "Tcp", "OutRsts").unwrap();
    let before = resets(&lab);
    let np = Running::report("drops").unwrap();
    let b = lab.ip("pod-b").to_string();
    lab.sh_ok("pod-a", &format!("{} connect-many {b} 6001 40 500", labtool())).unwrap();
    drop(listener);
    lab.sh_ok("pod-a", &format!("{} blast {b} 9 3000", labtool())).unwrap();
    settle();
    let report: Value = serde_json::from_str(&np.stop().unwrap()).unwrap();
    let sent = resets(&lab) - before;
    let counted = count(&report, "pod-b", "NO_SOCKET");
    let f = findings_of(&report, &["pod-b"])
        .into_iter()
        .find(|f| f["id"] == "packet_drops")
        .unwrap_or_else(|| panic!("no packet_drops for pod-b: {:#}", report["findings"]));
    println!("pod-b resets {sent}, NO_SOCKET {counted}: {} {}", f["confidence"], f["discrepancy"]);
    assert_eq!(sent, 40, "each queued child was reset");
    assert_eq!(counted, 3000, "{:#}", report["drops"]);
    assert_eq!(f["confidence"], "kernel_differs", "{f:#}");
    let why = f["discrepancy"].as_str().unwrap();
    assert!(why.starts_with("netprobe 3000, kernel 3040 "), "{why}");
}
