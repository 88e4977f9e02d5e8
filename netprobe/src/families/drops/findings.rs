//! Drops that no other finding explains.

use crate::report::{
    findings::{ev, Context, Finding, FindingId, Rule, Severity},
    timeline::{Metric, Subject},
};

/// Drops of one reason in one pod per second, outside the sites other findings explain, below
/// which they are background (stray multicast, a late packet to a closed socket).
const DROPS_PER_S_MIN: u64 = 10;

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        // Drops at the sites the other findings explain are theirs; a closing socket's purge
        // loses nothing on the network.
        let explained = |netns: u32, reason: &str| -> u64 {
            let tl = c.tl;
            [Metric::VerdictDrops, Metric::RuleDrops, Metric::BacklogDrops, Metric::TeardownDrops]
                .iter()
                .map(|m| tl.total(&(*m, Subject::Netns(netns), reason.to_owned())))
                .sum()
        };
        for d in &c.r.drops {
            let rest = d.count.saturating_sub(explained(d.netns, &d.reason));
            let this = |s: Subject, l: &str| s == Subject::Netns(d.netns) && l == d.reason;
            if rest < DROPS_PER_S_MIN || c.tl.peak(Metric::Drops, this) < DROPS_PER_S_MIN {
                continue;
            }
            let k = c.kernel(d.netns);
            let mut evidence = vec![ev(format!("dropped, reason {}", d.reason), Some(rest), None)];
            let here: Vec<_> =
                c.tl.totals(Metric::DropLocation)
                    .filter(|(s, l, _)| {
                        *s == Subject::Netns(d.netns) && l.ends_with(&format!(" {}", d.reason))
                    })
                    .collect();
            evidence.extend(here.iter().take(3).map(|(_, l, n)| {
                ev(format!("at {}", l.split(' ').next().unwrap_or(l)), Some(*n), None)
            }));
            // The pod's own counters that count refused packets, for comparison.
            if k.udp_no_ports + k.tcp_out_rsts > 0 {
                evidence.push(ev(
                    "the same drops, next to the pod's UDP datagrams to closed ports and TCP resets \
                     sent (they agree when the reason is about a missing socket)",
                    Some(rest),
                    Some((k.udp_no_ports + k.tcp_out_rsts, "Udp(6) NoPorts + Tcp OutRsts")),
                ));
            }
            out.push(Finding {
                id: FindingId::PacketDrops,
                facts: Vec::new(),
                severity: Severity::Warning,
                summary: format!(
                    "{}: {rest} packets dropped by the kernel with reason {}",
                    d.pod, d.reason
                ),
                pods: vec![d.pod.clone()],
                window: c
                    .window(&[Metric::Drops], |s, l| s == Subject::Netns(d.netns) && l == d.reason),
                evidence,
                remedy: vec![
                    format!(
                        "the kernel documents reason {} as SKB_DROP_REASON_{} in \
                         include/net/dropreason-core.h; the locations above say which code path",
                        d.reason, d.reason
                    ),
                    format!(
                        "`netprobe watch --pod {} --events drops` shows the flows: for a reason \
                         about sockets, who sends to a port nothing listens on",
                        d.pod
                    ),
                ],
            });
        }
    }
}
