//! Drops that no other finding explains: by reason, or, on a kernel without drop reasons, by
//! the function that freed them.

use std::collections::BTreeMap;

use super::{report::DropCount, sites};
use crate::{
    reasons,
    report::{
        findings::{ev, Context, Finding, FindingId, Rule, Severity},
        timeline::{Metric, Subject},
    },
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
    Metric::VERDICT_DROPS,
    Metric::RULE_DROPS,
    Metric::BACKLOG_DROPS,
    Metric::TEARDOWN_DROPS,
    Metric::BACKGROUND_DROPS,
];

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        for d in &c.r.sections.drops.drops {
            if d.reason == reasons::NONE {
                by_location(c, d, out);
                continue;
            }
            let this = |s: Subject, l: &str| s == Subject::Netns(d.netns) && l == d.reason;
            // Per second, the drops no other finding explains and that are not background.
            let mut rest_per_s = c.tl.sum(Metric::DROPS, this);
            for m in EXPLAINED {
                for (r, e) in rest_per_s.iter_mut().zip(c.tl.sum(m, this)) {
                    *r = r.saturating_sub(e);
                }
            }
            let rest: u64 = rest_per_s.iter().sum();
            let traffic = c.tl.sum(Metric::KERNEL_IP_PACKETS, |s, _| s == Subject::Netns(d.netns));
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
                .totals(Metric::DROP_LOCATION)
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
                    .window(&[Metric::DROPS], |s, l| s == Subject::Netns(d.netns) && l == d.reason),
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

/// Where the other findings explain the drops freed there, or nothing was lost (teardown).
const EXPLAINED_SITES: [&str; 4] =
    [sites::HOOK_VERDICT, sites::NFT_RULE, sites::BACKLOG_FULL, sites::SOCKET_TEARDOWN];

/// A pod's drops on a kernel that gives no reason: one finding per kernel function that
/// freed at least `DROPS_PER_S_MIN` in some second, outside the explained sites. Such kernels
/// also free some packets that were not lost through kfree_skb, so the function is the
/// evidence, never a reason netprobe would make up.
fn by_location(c: &Context, d: &DropCount, out: &mut Vec<Finding>) {
    let pod = Subject::Netns(d.netns);
    let mine = |s: Subject, l: &str| s == pod && l.ends_with(&format!(" {}", d.reason));
    let mut per_function: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for (s, label, n) in c.tl.totals(Metric::DROP_LOCATION) {
        let location = location_of(label);
        if mine(s, label) && !EXPLAINED_SITES.contains(&sites::function(location)) {
            per_function.entry(sites::function(location)).or_default().push((location, n));
        }
    }
    for (function, mut locations) in per_function {
        let here = |s: Subject, l: &str| mine(s, l) && sites::function(location_of(l)) == function;
        let total: u64 = locations.iter().map(|(_, n)| n).sum();
        if total < DROPS_PER_S_MIN
            || c.tl.sum(Metric::DROP_LOCATION, here).into_iter().max().unwrap_or(0)
                < DROPS_PER_S_MIN
        {
            continue;
        }
        locations.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let mut evidence = vec![ev(
            format!("freed in {function} (this kernel gives no drop reason)"),
            Some(total),
            None,
        )];
        evidence
            .extend(locations.iter().take(3).map(|(l, n)| ev(format!("at {l}"), Some(*n), None)));
        out.push(Finding {
            id: FindingId::PacketDrops,
            facts: Vec::new(),
            severity: Severity::Warning,
            summary: format!(
                "{}: {total} packets dropped by the kernel in {function} (no drop reason on this \
                 kernel)",
                d.pod
            ),
            pods: vec![d.pod.clone()],
            window: c.window(&[Metric::DROP_LOCATION], here),
            evidence,
            remedy: vec![
                format!(
                    "this kernel records no drop reason (they came with 5.17): {function} in the \
                     kernel's source says which check dropped them"
                ),
                format!(
                    "`netprobe watch --pod {} --events drops` shows the flows and locations",
                    d.pod
                ),
            ],
        });
    }
}

/// The location of a `location reason` label.
fn location_of(label: &str) -> &str {
    label.split(' ').next().unwrap_or(label)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{
        families::{drops::snapshot::DropRow, Rows},
        family::Family,
        frames::{fixture, Frame, Frames, Snapshot},
        reasons::{self, Reasons},
        report::{findings::FindingId, Builder, Report},
    };

    const POD: u32 = 4026532000;

    /// A report of one second on a kernel without drop reasons, whose drops grew by `rows`.
    fn report(rows: &[(&str, u64)]) -> Report {
        let mut header = fixture::header(&[Family::Drops]);
        header.reasons = Reasons::default();
        let drops = |scale: u64| -> Vec<DropRow> {
            rows.iter()
                .map(|(location, n)| DropRow {
                    netns: POD,
                    reason: 0,
                    location: (*location).into(),
                    count: n * scale,
                })
                .collect()
        };
        let mut b = Builder::default();
        b.frame(&Frame::Header(header));
        b.frame(&Frame::Pods(BTreeMap::from([(POD, crate::pods::tests::meta("web-1"))])));
        b.frame(&Frame::Snapshot(Snapshot {
            t_ns: 1_000_000_000,
            rows: Rows { drops: drops(0), ..Default::default() },
            ..Default::default()
        }));
        b.frame(&Frame::Snapshot(Snapshot {
            t_ns: 2_000_000_000,
            rows: Rows { drops: drops(1), ..Default::default() },
            ..Default::default()
        }));
        b.finish(None).unwrap()
    }

    #[test]
    fn without_drop_reasons_drops_are_found_by_location() {
        let r = report(&[
            ("__udp4_lib_rcv+0x4bc", 40),
            ("__udp4_lib_rcv+0x3a0", 10),
            ("tcp_v4_rcv+0x99", 3),
            // The conntrack finding's: not a packet_drops one.
            ("nf_hook_slow+0x7d", 60),
        ]);
        let d = &r.sections.drops.drops[0];
        assert_eq!((d.reason.as_str(), d.reason_code, d.count), (reasons::NONE, None, 113));
        let found: Vec<_> = r.findings.iter().filter(|f| f.id == FindingId::PacketDrops).collect();
        assert_eq!(found.len(), 1, "{found:?}");
        let f = found[0];
        assert!(
            f.summary.contains("50 packets dropped by the kernel in __udp4_lib_rcv"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence[0].netprobe, Some(50));
        assert_eq!(f.evidence[1].what, "at __udp4_lib_rcv+0x4bc");
        // No reason is made up, nor a kernel header that would not have it.
        let text = serde_json::to_string(f).unwrap();
        assert!(!text.contains("SKB_DROP_REASON") && !text.contains("reason none"), "{text}");
    }

    #[test]
    fn without_drop_reasons_a_few_drops_are_background() {
        let r = report(&[("__udp4_lib_rcv+0x4bc", 9), ("tcp_v4_rcv+0x99", 9)]);
        assert!(r.findings.iter().all(|f| f.id != FindingId::PacketDrops), "{:?}", r.findings);
    }
}
