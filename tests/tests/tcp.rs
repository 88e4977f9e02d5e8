//! TCP retransmits, resets and handshake timeouts (incidents 02 and 05), each kind against
//! the pod's own kernel counter: data retransmits against `Tcp RetransSegs - TcpExt
//! TCPSynRetrans`, SYN and SYN-ACK retransmits against `TCPSynRetrans` (the kernel counts
//! both there; a pod that only connects has no SYN-ACKs to resend, one that only listens no
//! SYNs), resets sent against `Tcp OutRsts`, resets received by a connecting client against
//! `Tcp AttemptFails`, by an open connection against `Tcp EstabResets`.

mod common;

use common::{assert_best_tiers, incident, settle, Scratch};
use netprobe_tests::{
    ftrace::{assert_seen, Ftrace},
    lab::Lab,
    netprobe::Running,
    traffic::tcp_closed,
};
use serde_json::Value;

/// Netprobe's exact count of `event` for `pod`; a missing row is 0, a row without a count
/// fails.
fn count(report: &Value, pod: &str, event: &str) -> u64 {
    report["tcp"]
        .as_array()
        .expect("tcp counts")
        .iter()
        .filter(|t| t["pod"] == pod && t["event"] == event)
        .map(|t| t["count"].as_u64().expect("count"))
        .sum()
}

/// The kernel counters each kind is checked against, for one pod.
#[derive(Debug, Clone, Copy, Default)]
struct Kernel {
    retrans_segs: u64,
    syn_retrans: u64,
    out_rsts: u64,
    attempt_fails: u64,
    estab_resets: u64,
}

impl Kernel {
    fn read(lab: &Lab, pod: &str) -> anyhow::Result<Self> {
        Ok(Self {
            retrans_segs: lab.snmp(pod, "Tcp", "RetransSegs")?,
            syn_retrans: lab.snmp(pod, "TcpExt", "TCPSynRetrans")?,
            out_rsts: lab.snmp(pod, "Tcp", "OutRsts")?,
            attempt_fails: lab.snmp(pod, "Tcp", "AttemptFails")?,
            estab_resets: lab.snmp(pod, "Tcp", "EstabResets")?,
        })
    }

    fn since(self, before: Self) -> Self {
        Self {
            retrans_segs: self.retrans_segs - before.retrans_segs,
            syn_retrans: self.syn_retrans - before.syn_retrans,
            out_rsts: self.out_rsts - before.out_rsts,
            attempt_fails: self.attempt_fails - before.attempt_fails,
            estab_resets: self.estab_resets - before.estab_resets,
        }
    }
}

/// What a run gives.
struct Run {
    report: Value,
    /// Each pod's kernel counter growth.
    kernel: Vec<(&'static str, Kernel)>,
    lab: Lab,
    /// Retransmits of any pod sent while PID 1 was current, where BPF does not run.
    unseen: u64,
}

/// Counts retransmits in the context no BPF program sees here (docs/findings.md): RTO
/// timers fire in whatever task is current.
struct Unseen([Ftrace; 2]);

impl Unseen {
    fn start() -> anyhow::Result<Self> {
        Ok(Self([
            Ftrace::in_init("tcp/tcp_retransmit_skb", None)?,
            Ftrace::in_init("tcp/tcp_retransmit_synack", None)?,
        ]))
    }

    fn total(&self) -> anyhow::Result<u64> {
        self.0.iter().map(Ftrace::total).sum()
    }
}

/// Runs an incident under `netprobe report --events tcp` and the incident's own arguments,
/// and any `extra`.
fn run(name: &str, extra: &[&str]) -> anyhow::Result<Run> {
    let (lab, _running, incident) = incident(name)?;
    let read = |lab: &Lab| -> anyhow::Result<Vec<Kernel>> {
        incident.pods.iter().map(|p| Kernel::read(lab, p)).collect()
    };
    let before = read(&lab)?;
    let unseen = Unseen::start()?;
    let mut args = vec!["report", "--duration", "10m", "--events", "tcp", "--format", "json"];
    args.extend(incident.report_args.iter().chain(extra));
    let np = Running::start(&args)?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);
    let grown: Vec<Kernel> = read(&lab)?.into_iter().zip(before).map(|(a, b)| a.since(b)).collect();
    let kernel = incident.pods.iter().copied().zip(grown).collect();
    Ok(Run { report, kernel, lab, unseen: unseen.total()? })
}

/// Each retransmit kind against its own counter. `clients` only connect (no SYN-ACKs to
/// resend), the others only listen (no SYNs to resend).
fn assert_retransmit_kinds(run: &Run, clients: &[&str]) {
    let Run { report, unseen, .. } = run;
    for (pod, k) in &run.kernel {
        let (data, syn, synack) = (
            count(report, pod, "retransmit"),
            count(report, pod, "syn_retransmit"),
            count(report, pod, "synack_retransmit"),
        );
        println!(
            "{pod}: netprobe data {data} syn {syn} synack {synack}; kernel RetransSegs {} \
             TCPSynRetrans {}; {unseen} of any pod's in PID 1's context",
            k.retrans_segs, k.syn_retrans
        );
        assert_seen(
            &format!("{pod} data retransmits"),
            data,
            k.retrans_segs - k.syn_retrans,
            *unseen,
        );
        let (sent, other) = if clients.contains(pod) { (syn, synack) } else { (synack, syn) };
        assert_seen(&format!("{pod} SYN or SYN-ACK retransmits"), sent, k.syn_retrans, *unseen);
        assert_eq!(other, 0, "{pod}: a client resends no SYN-ACKs, a server no SYNs: {report:#}");
    }
}

#[test]
fn lossy_path_retransmits_match_tcp_retrans_segs_per_pod() -> anyhow::Result<()> {
    let run = run("lossy-path", &[])?;
    assert_retransmit_kinds(&run, &["pod-a", "pod-c"]);
    let (report, a) = (&run.report, run.kernel[0].1);
    assert!(a.retrans_segs - a.syn_retrans > 10, "the lossy path must make the client resend data");
    let families: Vec<&Value> = report["families"].as_array().unwrap().iter().collect();
    assert_eq!(families.len(), 1, "--events tcp: {families:?}");
    assert_eq!(families[0]["family"], "tcp");
    Ok(())
}

#[test]
fn lost_syn_acks_show_as_a_handshake_timeout() -> anyhow::Result<()> {
    let run = run("handshake-timeout", &[])?;
    assert_retransmit_kinds(&run, &["pod-a"]);
    let Run { report, kernel, lab, .. } = run;
    let syn_retrans = kernel[0].1.syn_retrans;
    let b = lab.ip("pod-b").to_string();
    let timeouts = report["handshake_timeouts"].as_array().unwrap();
    let hit = timeouts
        .iter()
        .find(|h| h["pod"] == "pod-a" && h["daddr"] == b && h["dport"] == 5002)
        .unwrap_or_else(|| panic!("no handshake timeout for pod-a -> {b}:5002: {report:#}"));
    println!("pod-a -> {b}:5002: {hit}; pod-a TCPSynRetrans {syn_retrans}");
    // One connect() of 3.5 s: the SYN goes again after 1 s, then 1 s apart for the first
    // net.ipv4.tcp_syn_linear_timeouts resends (6.7+; 4 by default), doubling after that.
    let linear: u32 =
        lab.sh_ok("pod-a", "sysctl -n net.ipv4.tcp_syn_linear_timeouts")?.trim().parse()?;
    let expected = syn_resends_before(linear, 3.5);
    println!("tcp_syn_linear_timeouts {linear}: {expected} SYN resends within 3.5 s");
    assert_eq!(syn_retrans, expected, "the client's SYN retransmits");
    assert_eq!(hit["syn_retransmits"], syn_retrans, "{hit}");
    assert_eq!(hit["rst_received"], 0, "{hit}");
    assert_eq!(timeouts.len(), 1, "{timeouts:?}");
    Ok(())
}

/// How many times a connecting socket resends its SYN within `secs`: the initial RTO of 1 s,
/// kept while the backoff is at most `linear` (tcp_retransmit_timer), doubled after.
fn syn_resends_before(linear: u32, secs: f64) -> u64 {
    let (mut t, mut rto, mut n) = (0.0, 1.0, 0);
    loop {
        t += rto;
        if t >= secs {
            return n;
        }
        n += 1;
        if n > u64::from(linear) {
            rto *= 2.0;
        }
    }
}

#[test]
fn connections_reset_after_a_middlebox_idle_timeout() -> anyhow::Result<()> {
    // pod-a's four connections through pod-c go quiet for 3 s; pod-c forgets flows after
    // 2 s and resets the next segment. pod-d's stay under it. `--idle-reset-min 2s`.
    let recording = Scratch::new("idle.np");
    let Run { report, kernel, lab, .. } = run("idle-timeout", &["--record", recording.str()])?;
    let remote = netprobe_tests::incidents::REMOTE;
    let resets = u64::from(netprobe_tests::incidents::IDLE_RESETS);
    for (pod, k) in &kernel {
        let received = count(&report, pod, "rst_received");
        println!("{pod}: netprobe rst_received {received}; EstabResets {}", k.estab_resets);
        assert_eq!(received, k.estab_resets, "{pod}: {report:#}");
    }
    assert_eq!(kernel[0].1.estab_resets, resets, "every quiet connection of pod-a is reset");
    let rows = report["idle_resets"].as_array().expect("idle_resets");
    println!("idle_resets: {rows:?}");
    assert_eq!(rows.len(), 1, "only pod-a's connections were reset: {rows:?}");
    let row = &rows[0];
    assert_eq!((row["pod"].as_str(), row["daddr"].as_str()), (Some("pod-a"), Some(remote)));
    assert_eq!((row["dport"].as_u64(), row["resets"].as_u64()), (Some(5008), Some(resets)));
    assert_eq!(row["after_idle"].as_u64(), Some(resets), "{row}");
    // Quiet since the ACK of the first write, 3 s before the second: jiffies (4 ms at HZ
    // 250) and the sleep's slack either way.
    let (min, max) =
        (row["idle_ms"]["min"].as_u64().unwrap(), row["idle_ms"]["max"].as_u64().unwrap());
    assert!((2900..=3300).contains(&min) && (min..=3300).contains(&max), "{row}");
    let finding = &report["findings"][0];
    assert_eq!(finding["evidence"][0]["netprobe"].as_u64(), Some(resets), "{finding:#}");
    assert_eq!(finding["evidence"][0]["kernel"].as_u64(), Some(resets), "{finding:#}");
    drop(lab);

    // The recording gives the same rows at the same threshold, and none at the default 300 s.
    let replay = |args: &[&str]| -> anyhow::Result<Value> {
        let mut all = vec!["report", "--from", recording.str(), "--format", "json"];
        all.extend(args);
        let out = netprobe_tests::netprobe::run(&all)?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let again = replay(&["--idle-reset-min", "2s"])?;
    assert_eq!(again["idle_resets"], report["idle_resets"]);
    assert_eq!(again["findings"][0]["id"], "idle_timeout_reset");
    let default = replay(&[])?;
    assert_eq!(default["idle_resets"][0]["after_idle"], 0, "{:#}", default["idle_resets"]);
    let ids: Vec<&Value> =
        default["findings"].as_array().unwrap().iter().map(|f| &f["id"]).collect();
    assert!(!ids.contains(&&Value::from("idle_timeout_reset")), "{ids:?}");
    Ok(())
}

#[test]
fn synacks_from_the_backend_show_the_load_balancer_hairpin() -> anyhow::Result<()> {
    // pod-a connects to pod-c's VIP; pod-c DNATs to pod-b without SNAT, so pod-b's SYN-ACKs
    // reach pod-a from pod-b's own address: each one reset, the SYNs resent until connect()
    // gives up after 3.5 s.
    let run = run("lb-hairpin", &[])?;
    assert_retransmit_kinds(&run, &["pod-a", "pod-d"]);
    let Run { report, kernel, lab, .. } = run;
    for (pod, k) in &kernel {
        let sent = count(&report, pod, "rst_sent");
        println!("{pod}: netprobe rst_sent {sent}; OutRsts {}", k.out_rsts);
        assert_eq!(sent, k.out_rsts, "{pod}: {report:#}");
    }
    let a = kernel[0].1;
    let linear: u32 =
        lab.sh_ok("pod-a", "sysctl -n net.ipv4.tcp_syn_linear_timeouts")?.trim().parse()?;
    let resends = syn_resends_before(linear, 3.5);
    assert_eq!(a.syn_retrans, resends, "pod-a's SYN retransmits");
    assert_eq!(a.out_rsts, resends + 1, "one reset per SYN-ACK, one SYN-ACK per SYN");
    let rows = report["lb_hairpins"].as_array().expect("lb_hairpins");
    println!("lb_hairpins: {rows:?}");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let h = &rows[0];
    let b = lab.ip("pod-b").to_string();
    assert_eq!(
        (h["pod"].as_str(), h["daddr"].as_str()),
        (Some("pod-a"), Some(netprobe_tests::incidents::VIP))
    );
    assert_eq!((h["dport"].as_u64(), h["synack_saddr"].as_str()), (Some(80), Some(b.as_str())));
    assert_eq!((h["synack_sport"].as_u64(), h["ports"].as_u64()), (Some(5007), Some(1)));
    assert_eq!(h["syn_retransmits"].as_u64(), Some(a.syn_retrans), "{h}");
    assert_eq!(h["synacks_reset"].as_u64(), Some(a.out_rsts), "{h}");
    Ok(())
}

#[test]
fn resets_match_out_rsts_and_failed_attempts() -> anyhow::Result<()> {
    // 25 SYNs from pod-a to a closed port of pod-b: pod-b sends 25 RSTs with no socket,
    // pod-a's connecting sockets receive them, each a failed attempt.
    const N: u64 = 25;
    let (lab, _running, _) = incident("closed-port")?;
    let pods = ["pod-a", "pod-b", "pod-c"];
    let read = |lab: &Lab| -> anyhow::Result<Vec<Kernel>> {
        pods.iter().map(|p| Kernel::read(lab, p)).collect()
    };
    let before = read(&lab)?;
    let np = Running::report("tcp")?;
    tcp_closed(&lab, "pod-a", "pod-b", 8080, N as u32)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    assert_best_tiers(&report);
    let kernel: Vec<Kernel> =
        read(&lab)?.into_iter().zip(before).map(|(a, b)| a.since(b)).collect();
    for (pod, k) in pods.iter().zip(&kernel) {
        let (sent, received) =
            (count(&report, pod, "rst_sent"), count(&report, pod, "rst_received"));
        println!(
            "{pod}: netprobe rst_sent {sent} rst_received {received}; kernel OutRsts {} \
             AttemptFails {}",
            k.out_rsts, k.attempt_fails
        );
        assert_eq!(sent, k.out_rsts, "{pod}: {report:#}");
        assert_eq!(received, k.attempt_fails, "{pod}: {report:#}");
    }
    assert_eq!(kernel[1].out_rsts, N, "pod-b answers every SYN with a RST");
    assert_eq!(kernel[0].attempt_fails, N, "every connect() in pod-a fails on a RST");
    Ok(())
}

#[test]
fn ipv6_syn_retransmits_resets_and_drops_match_the_kernel() -> anyhow::Result<()> {
    // pod-a (fd99::10) to pod-b (fd99::11): one connect() into a port whose SYNs pod-b's nft
    // rule drops, then 10 connects to a closed port, answered with resets.
    const N: u64 = 10;
    let (a6, b6) = ("fd99::10", "fd99::11");
    let (lab, _running, _) = incident("closed-port")?;
    netprobe_tests::traffic::nft(
        &lab,
        "pod-b",
        "input",
        &["meta nfproto ipv6 tcp dport 5006 drop"],
    )?;
    let np = Running::start(&["watch", "--events", "drops,tcp", "--format", "json"])?;
    let (a0, b0) = (Kernel::read(&lab, "pod-a")?, Kernel::read(&lab, "pod-b")?);
    let out = lab
        .sh("pod-a", &format!("{} connect {b6} 5006 2500", netprobe_tests::incidents::labtool()))?;
    assert!(!out.status.success(), "the SYNs must be dropped");
    let a1 = Kernel::read(&lab, "pod-a")?;
    lab.sh(
        "pod-a",
        &format!("for i in $(seq {N}); do (exec 3<>/dev/tcp/{b6}/8080) 2>/dev/null; done"),
    )?;
    settle();
    let records: Vec<Value> =
        np.stop()?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let (a2, b2) = (Kernel::read(&lab, "pod-a")?, Kernel::read(&lab, "pod-b")?);
    records.iter().for_each(common::docs::check_watch_record);
    let of = |pod: &str, ty: &str, what: &str, key: &str| -> Vec<&Value> {
        records.iter().filter(|r| r["pod"] == pod && r["type"] == ty && r[key] == what).collect()
    };
    let v6 = |r: &Value, src: &str, dst: &str| {
        (r["l3"].as_str(), r["saddr"].as_str(), r["daddr"].as_str())
            == (Some("ipv6"), Some(src), Some(dst))
    };

    // SYN retransmits of the blackholed connect.
    let syn = of("pod-a", "tcp", "syn_retransmit", "event");
    let linear: u32 =
        lab.sh_ok("pod-a", "sysctl -n net.ipv4.tcp_syn_linear_timeouts")?.trim().parse()?;
    let syn_kernel = a1.since(a0).syn_retrans;
    println!("IPv6: pod-a syn_retransmit samples {}, TCPSynRetrans {syn_kernel}", syn.len());
    assert_eq!(syn_kernel, syn_resends_before(linear, 2.5));
    assert_eq!(syn.len() as u64, syn_kernel, "{syn:?}");
    for r in &syn {
        assert!(v6(r, a6, b6) && r["dport"] == 5006 && r["state"] == "SYN_SENT", "{r}");
    }
    let nft: Vec<&Value> = of("pod-b", "drop", "NETFILTER_DROP", "reason");
    assert_eq!(nft.len() as u64, 1 + syn_kernel, "the SYN and its resends: {nft:?}");
    assert!(nft.iter().all(|r| v6(r, a6, b6) && r["dport"] == 5006), "{nft:?}");
    assert!(nft.iter().all(|r| r["location"].as_str().unwrap().starts_with("nft_do_chain+")));

    // Resets from pod-b's closed port, each received by a connecting socket of pod-a.
    let sent = of("pod-b", "tcp", "rst_sent", "event");
    let received = of("pod-a", "tcp", "rst_received", "event");
    let no_socket = of("pod-b", "drop", "NO_SOCKET", "reason");
    let (rsts, fails) = (b2.since(b0).out_rsts, a2.since(a1).attempt_fails);
    println!(
        "IPv6: pod-b rst_sent {} (OutRsts {rsts}), pod-a rst_received {} (AttemptFails {fails}), \
         pod-b NO_SOCKET {}",
        sent.len(),
        received.len(),
        no_socket.len()
    );
    assert_eq!((rsts, fails), (N, N));
    assert_eq!((sent.len() as u64, received.len() as u64), (N, N));
    assert!(sent.iter().all(|r| v6(r, b6, a6) && r["sport"] == 8080), "{sent:?}");
    assert!(received.iter().all(|r| v6(r, a6, b6) && r["dport"] == 8080), "{received:?}");
    assert_eq!(no_socket.len() as u64, N, "{no_socket:?}");
    for r in &no_socket {
        assert!(v6(r, a6, b6) && r["proto"] == "tcp" && r["dport"] == 8080, "{r}");
        assert!(r["location"].as_str().unwrap().starts_with("tcp_v6_rcv+"), "{r}");
    }
    Ok(())
}

#[test]
fn ipv6_lossy_path_retransmits_match_the_kernel() -> anyhow::Result<()> {
    // Like lossy-path, over IPv6: one in ten segments to pod-b's dual-stack server is lost.
    let (a6, b6) = ("fd99::10", "fd99::11");
    let (lab, _running, _) = incident("closed-port")?;
    let rule = "meta nfproto ipv6 tcp dport 5007 numgen random mod 10 == 0 drop";
    netprobe_tests::traffic::nft(&lab, "pod-b", "input", &[rule])?;
    let tool = netprobe_tests::incidents::labtool();
    let _server = lab.spawn("pod-b", &tool, &["sink", "5007"])?;
    lab.wait_listening("pod-b", 5007, false)?;
    let np = Running::start(&["watch", "--events", "tcp", "--format", "json"])?;
    let before = Kernel::read(&lab, "pod-a")?;
    let unseen = Unseen::start()?;
    lab.sh_ok("pod-a", &format!("timeout 60 {tool} send {b6} 5007 2000000"))?;
    settle();
    let records: Vec<Value> =
        np.stop()?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let k = Kernel::read(&lab, "pod-a")?.since(before);
    let unseen = unseen.total()?;
    records.iter().for_each(common::docs::check_watch_record);
    let data: Vec<&Value> =
        records.iter().filter(|r| r["pod"] == "pod-a" && r["event"] == "retransmit").collect();
    let segs: u64 = data.iter().map(|r| r["segs"].as_u64().expect("segs")).sum();
    println!(
        "IPv6 lossy: pod-a {} retransmit samples, {segs} segments; RetransSegs {} TCPSynRetrans \
         {}; {unseen} in PID 1's context",
        data.len(),
        k.retrans_segs,
        k.syn_retrans
    );
    assert!(segs > 10, "one in ten lost must be resent");
    assert_seen("data segments resent", segs, k.retrans_segs - k.syn_retrans, unseen);
    for r in &data {
        assert_eq!((r["l3"].as_str(), r["saddr"].as_str()), (Some("ipv6"), Some(a6)), "{r}");
        assert_eq!((r["daddr"].as_str(), r["dport"].as_u64()), (Some(b6), Some(5007)), "{r}");
    }
    Ok(())
}
