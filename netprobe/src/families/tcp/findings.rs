//! TCP: handshakes retransmitted, and data lost on the path.

use super::TcpEventKind;
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

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
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
                    ev(
                        "data segments retransmitted",
                        Some(data),
                        Some((k.tcp_retrans_segs, "Tcp RetransSegs")),
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
