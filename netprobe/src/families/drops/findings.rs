//! Drops that no other finding explains.

use super::sites;
use crate::report::{
    findings::{ev, Context, Finding, FindingId, Rule, Severity},
    timeline::{Metric, Subject},
};

/// Drops of one reason in one pod per second, outside the sites other findings explain and
/// outside background, below which they are noise (a late packet to a closed socket)...
const DROPS_PER_S_MIN: u64 = 10;
/// ...and the share of the pod's IP packets (in and out) in that second they must reach:
/// a few stray drops in heavy traffic are not abnormal.
const DROPS_SHARE_MIN: f64 = 0.01;

/// Drops other findings explain (verdicts, rules, backlog), a closing socket's purge (which
/// loses nothing on the network), and background: traffic nobody in the pod wanted.
const EXPLAINED: [Metric; 5] = [
    Metric::VerdictDrops,
    Metric::RuleDrops,
    Metric::BacklogDrops,
    Metric::TeardownDrops,
    Metric::BackgroundDrops,
];

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        for d in &c.r.drops {
            let this = |s: Subject, l: &str| s == Subject::Netns(d.netns) && l == d.reason;
            // Per second, the drops no other finding explains and that are not background.
            let mut rest_per_s = c.tl.sum(Metric::Drops, this);
            for m in EXPLAINED {
                for (r, e) in rest_per_s.iter_mut().zip(c.tl.sum(m, this)) {
                    *r = r.saturating_sub(e);
                }
            }
            let rest: u64 = rest_per_s.iter().sum();
            let traffic = c.tl.sum(Metric::KernelIpPackets, |s, _| s == Subject::Netns(d.netns));
            // Without the kernel's packet counts (an old recording), the floor alone decides.
            let abnormal = rest_per_s
                .iter()
                .zip(traffic)
                .any(|(r, t)| *r >= DROPS_PER_S_MIN && *r as f64 >= t as f64 * DROPS_SHARE_MIN);
            if !abnormal {
                continue;
            }
            let k = c.kernel(d.netns);
            let mut evidence = vec![ev(format!("dropped, reason {}", d.reason), Some(rest), None)];
            let here: Vec<_> = c
                .tl
                .totals(Metric::DropLocation)
                .filter(|(s, l, _)| {
                    *s == Subject::Netns(d.netns)
                        && l.strip_suffix(&format!(" {}", d.reason))
                            .is_some_and(|at| !sites::background(sites::function(at), &d.reason))
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
