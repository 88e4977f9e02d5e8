//! TCP: handshakes retransmitted or answered from the wrong address, open connections reset
//! after idling, and data lost on the path.

use super::{patterns::Quantiles, TcpEventKind};
use crate::report::{
    findings::{ev, Context, Finding, FindingId, Rule, Severity},
    timeline::{Metric, Subject},
};

/// Retransmitted data segments per pod from which on loss is worth a finding, and the share
/// of sent segments that makes it a warning, then critical.
const RETRANS_MIN: u64 = 10;
const RETRANS_WARN: f64 = 0.01;
const RETRANS_CRITICAL: f64 = 0.05;
/// SYN retransmits in one pod that make a handshake-timeout finding.
const SYN_RETRANS_MIN: u64 = 2;
/// Resets after idle to one destination that make an idle-timeout finding: one may be a
/// peer that went away; several after long quiet periods are a middlebox's timeout.
const IDLE_RESETS_MIN: u64 = 3;

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        hairpins(c, out);
        idle_resets(c, out);
        let count = |netns: u32, event: TcpEventKind| {
            c.r.sections
                .tcp
                .tcp
                .iter()
                .filter(|t| t.netns == netns && t.event == event.as_str())
                .map(|t| t.count)
                .sum::<u64>()
        };
        let mut pods: Vec<(u32, String)> =
            c.r.sections.tcp.tcp.iter().map(|t| (t.netns, t.pod.clone())).collect();
        pods.sort();
        pods.dedup();
        for (netns, pod) in pods {
            let k = c.kernel(netns);
            let syn = count(netns, TcpEventKind::SynRetransmit);
            if syn >= SYN_RETRANS_MIN {
                let mut evidence = vec![ev(
                    "SYNs retransmitted (a connect() waiting for a SYN-ACK)",
                    Some(syn),
                    Some((k.tcp_syn_retrans, "TcpExt TCPSynRetrans")),
                )];
                let dests: Vec<_> =
                    c.r.sections
                        .tcp
                        .handshake_timeouts
                        .iter()
                        .filter(|h| h.netns == netns)
                        .collect();
                evidence.extend(dests.iter().map(|h| {
                    ev(
                        format!("to {}:{} ({} resets back)", h.daddr, h.dport, h.rst_received),
                        Some(h.syn_retransmits),
                        None,
                    )
                }));
                let to =
                    dests.first().map_or(String::new(), |h| format!(" to {}:{}", h.daddr, h.dport));
                out.push(Finding {
                    id: FindingId::SynRetransmits,
                    facts: Vec::new(),
                    severity: Severity::Critical,
                    summary: format!(
                        "{pod}: {syn} SYNs retransmitted{to}: connections wait 1 s, 3 s, 7 s... or \
                         time out (handshake timeouts)"
                    ),
                    pods: vec![pod.clone()],
                    window: c.window(&[Metric::TCP], |s, l| {
                        s == Subject::Netns(netns) && l == TcpEventKind::SynRetransmit.as_str()
                    }),
                    evidence,
                    remedy: vec![
                        "the SYN or its SYN-ACK is lost on the way: a load balancer hairpin (a \
                         target reaching itself through an NLB with client IP preservation: \
                         preserve_client_ip.enabled=false, or call the service directly; incident \
                         05), a firewall/security group, or a full listen queue (listen_overflow)"
                            .into(),
                        "net.ipv4.tcp_syn_retries bounds how long connect() waits".into(),
                    ],
                });
            }
            let data = count(netns, TcpEventKind::Retransmit);
            let share = if k.tcp_out_segs > 0 { data as f64 / k.tcp_out_segs as f64 } else { 1.0 };
            if data >= RETRANS_MIN && share >= RETRANS_WARN {
                let mut evidence = vec![
                    // RetransSegs counts resent SYNs and SYN-ACKs too; TCPSynRetrans counts them.
                    ev(
                        "data segments retransmitted",
                        Some(data),
                        Some((
                            k.tcp_retrans_segs.saturating_sub(k.tcp_syn_retrans),
                            "Tcp RetransSegs - TcpExt TCPSynRetrans",
                        )),
                    ),
                    ev(
                        format!("share of segments sent: {:.1}%", 100.0 * share),
                        None,
                        Some((k.tcp_out_segs, "Tcp OutSegs")),
                    ),
                ];
                evidence.extend(
                    c.r.sections
                        .tcp
                        .retransmit_paths
                        .iter()
                        .filter(|p| p.netns == netns)
                        .take(3)
                        .map(|p| {
                            ev(format!("towards {}:{}", p.daddr, p.dport), Some(p.segs), None)
                        }),
                );
                out.push(Finding {
                    id: FindingId::RetransmitStorm,
                    facts: Vec::new(),
                    severity: if share >= RETRANS_CRITICAL {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    },
                    summary: format!(
                        "{pod}: {data} TCP segments retransmitted ({:.1}% of those sent): packets are \
                         lost on the path",
                        100.0 * share
                    ),
                    pods: vec![pod.clone()],
                    window: c
                        .window(&[Metric::TCP], |s, l| s == Subject::Netns(netns) && l == TcpEventKind::Retransmit.as_str()),
                    evidence,
                    remedy: vec![
                        "find where the path loses packets: drops on the way (`netprobe report` drops \
                         and their locations), interface errors (`ip -s link`), qdisc drops (`tc -s \
                         qdisc`), MTU black holes"
                            .into(),
                    ],
                });
            }
        }
    }
}

/// Connects whose SYN-ACKs come back from the backend itself rather than the load balancer
/// they were sent to: the client resets them (no socket has that peer), and its SYNs go
/// unanswered until connect() times out (incident 05).
fn hairpins(c: &Context, out: &mut Vec<Finding>) {
    for h in &c.r.sections.tcp.lb_hairpins {
        let k = c.kernel(h.netns);
        let (lb, backend) =
            (format!("{}:{}", h.daddr, h.dport), format!("{}:{}", h.synack_saddr, h.synack_sport));
        out.push(Finding {
            id: FindingId::LbHairpin,
            severity: Severity::Critical,
            summary: format!(
                "{}: connects to {lb} get their SYN-ACKs from {backend} instead, which are reset \
                 (no socket has that peer): the reply bypasses the load balancer (return-path \
                 asymmetry: a hairpin back to the client's own node)",
                h.pod
            ),
            pods: vec![h.pod.clone()],
            window: c.pod_window(&[Metric::TCP], h.netns),
            evidence: vec![
                ev(
                    format!("SYNs retransmitted to {lb} (the connect's destination)"),
                    Some(h.syn_retransmits),
                    Some((k.tcp_syn_retrans, "TcpExt TCPSynRetrans")),
                ),
                ev(
                    format!("SYN-ACKs from {backend} to the same local ports, answered with RST"),
                    Some(h.synacks_reset),
                    Some((k.tcp_out_rsts, "Tcp OutRsts")),
                ),
                ev("local ports that saw both", Some(h.ports), None),
            ],
            facts: Vec::new(),
            remedy: vec![
                "register the service's targets by IP (NLB IP target mode: \
                 service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip), so replies \
                 return through the load balancer"
                    .into(),
                "or keep instance targets without client IP preservation: \
                 service.beta.kubernetes.io/aws-load-balancer-target-group-attributes: \
                 preserve_client_ip.enabled=false"
                    .into(),
                "or call the service inside the cluster (its ClusterIP) rather than through the \
                 load balancer"
                    .into(),
            ],
        });
    }
}

/// Open connections reset after being quiet for the threshold or longer, several times to
/// one destination: a NAT gateway, load balancer or firewall forgot them (notes 02: AWS NAT
/// gateways and NLBs after 350 s) and answered the next segment with a reset.
fn idle_resets(c: &Context, out: &mut Vec<Finding>) {
    let min_s = c.r.sections.tcp.idle_reset_min_s;
    for row in c.r.sections.tcp.idle_resets.iter().filter(|r| r.after_idle >= IDLE_RESETS_MIN) {
        let Some(q) = row.idle_ms else { continue };
        let k = c.kernel(row.netns);
        let dest = format!("{}:{}", row.daddr, row.dport);
        let open_resets: u64 =
            c.r.sections
                .tcp
                .idle_resets
                .iter()
                .filter(|r| r.netns == row.netns)
                .map(|r| r.resets)
                .sum();
        out.push(Finding {
            id: FindingId::IdleTimeoutReset,
            severity: Severity::Critical,
            summary: format!(
                "{}: {} connections to {dest} reset after {} quiet: something on the path \
                 (NAT, load balancer, firewall) forgets idle connections after at most {}",
                row.pod,
                row.after_idle,
                span(q),
                secs(q.min)
            ),
            pods: vec![row.pod.clone()],
            window: c.window(&[Metric::TCP], |s, l| {
                s == Subject::Netns(row.netns) && l == TcpEventKind::RstReceived.as_str()
            }),
            evidence: vec![
                ev(
                    "resets received on open connections (ESTABLISHED, CLOSE_WAIT)",
                    Some(open_resets),
                    Some((k.tcp_estab_resets, "Tcp EstabResets")),
                ),
                ev(
                    format!(
                        "to {dest} after {} s or more quiet; quiet for min {}, median {}, 90% {}, \
                         max {}",
                        min_s,
                        secs(q.min),
                        secs(q.p50),
                        secs(q.p90),
                        secs(q.max)
                    ),
                    Some(row.after_idle),
                    None,
                ),
            ],
            facts: Vec::new(),
            remedy: vec![
                format!(
                    "send TCP keepalives more often than the middlebox's idle timeout (below {}): \
                     net.ipv4.tcp_keepalive_time (default 7200 s) for sockets with SO_KEEPALIVE, \
                     or the application's socket options (TCP_KEEPIDLE, TCP_KEEPINTVL; Envoy: \
                     upstream_connection_options.tcp_keepalive)",
                    secs(q.min)
                ),
                format!(
                    "or close pooled connections before they idle that long: the connection \
                     pool's max-idle time (idle timeout) below {}",
                    secs(q.min)
                ),
            ],
        });
    }
}

fn secs(ms: u32) -> String {
    format!("{:.1} s", f64::from(ms) / 1000.0)
}

/// `4.0-4.1 s`, or one time when they are all alike.
fn span(q: Quantiles) -> String {
    if q.min == q.max {
        secs(q.min)
    } else {
        format!("{:.1}-{}", f64::from(q.min) / 1000.0, secs(q.max))
    }
}
