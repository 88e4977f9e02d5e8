//! Conntrack: a full or nearly full table, insert races, and firewall rule drops.

use super::{NODE_WIDE, UTILISATION_WARN};
use crate::{
    family::Family,
    report::{
        findings::{ev, Context, Finding, FindingId, Rule, Severity},
        timeline::Metric,
    },
    tiers::Tier,
};

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        // Kernels that do not name the netns in their message: the node's, for every pod.
        let node_wide: u64 =
            c.r.sections
                .conntrack
                .conntrack
                .iter()
                .filter(|r| r.netns == NODE_WIDE)
                .map(|r| r.table_full_messages)
                .sum();
        // At the kprobe tier netprobe counts failed inserts itself, beside the kernel's counter.
        let hooked =
            c.r.families.iter().any(|f| f.family == Family::Conntrack && f.tier == Tier::Kprobe);
        for row in c.r.sections.conntrack.conntrack.iter().filter(|r| r.netns != NODE_WIDE) {
            let fill = format!("{}/{}", row.peak_count, row.max);
            let messages = if row.table_full_messages == 0 && node_wide > 0 {
                ev(
                    "kernel 'table full, dropping packet' messages on the node (this kernel does \
                     not say in which netns)",
                    Some(node_wide),
                    None,
                )
            } else {
                ev(
                    "kernel 'table full, dropping packet' messages",
                    Some(row.table_full_messages),
                    None,
                )
            };
            if row.table_full_drops > 0 {
                out.push(Finding {
                    id: FindingId::ConntrackTableFull,
                    facts: Vec::new(),
                    severity: Severity::Critical,
                    summary: format!(
                        "{}: conntrack table full ({fill} entries at peak): {} new connections \
                         dropped",
                        row.pod, row.table_full_drops
                    ),
                    pods: vec![row.pod.clone()],
                    window: c.pod_window(&[Metric::KERNEL_CONNTRACK_DROP], row.netns),
                    evidence: vec![
                        ev(
                            "packets dropped by a netfilter verdict (nf_hook_slow)",
                            Some(row.verdict_drops),
                            Some((row.table_full_drops, "nf_conntrack stat drop")),
                        ),
                        ev(format!("table fill at peak: {fill}"), Some(row.peak_count), None),
                        messages,
                    ],
                    remedy: vec![
                        format!(
                            "raise net.netfilter.nf_conntrack_max (now {}) to well above the peak, \
                             with net.netfilter.nf_conntrack_buckets (the hash size) about max/4",
                            row.max
                        ),
                        "shorten how long closed connections hold entries: \
                         net.netfilter.nf_conntrack_tcp_timeout_time_wait (default 120 s)"
                            .into(),
                        "fewer new connections: connection pooling / keep-alive; or exempt \
                         high-churn traffic from tracking (notrack)"
                            .into(),
                    ],
                });
            }
            let near = row.peak_count as f64 >= row.max as f64 * UTILISATION_WARN;
            if row.table_full_drops == 0 && row.max > 0 && near {
                out.push(Finding {
                    id: FindingId::ConntrackNearFull,
                    facts: Vec::new(),
                    severity: Severity::Warning,
                    summary: format!(
                        "{}: conntrack table {fill} at peak ({:.0}%): new connections will be \
                         dropped when it fills",
                        row.pod,
                        100.0 * row.peak_count as f64 / row.max as f64
                    ),
                    pods: vec![row.pod.clone()],
                    window: c.pod_window(&[], row.netns),
                    evidence: vec![ev(
                        format!("table entries at peak, of {}", row.max),
                        None,
                        Some((row.peak_count, "nf_conntrack_count")),
                    )],
                    remedy: vec![format!(
                        "raise net.netfilter.nf_conntrack_max (now {}) before it fills, with \
                         net.netfilter.nf_conntrack_buckets about max/4",
                        row.max
                    )],
                });
            }
            if row.insert_failed > 0 {
                out.push(Finding {
                    id: FindingId::ConntrackInsertFailed,
                    facts: Vec::new(),
                    severity: Severity::Critical,
                    summary: format!(
                        "{}: {} conntrack inserts lost a race and their packets were dropped",
                        row.pod, row.insert_failed
                    ),
                    pods: vec![row.pod.clone()],
                    window: c.pod_window(&[Metric::KERNEL_CONNTRACK_INSERT_FAILED], row.netns),
                    evidence: if hooked {
                        vec![
                            ev(
                                "inserts that failed at __nf_conntrack_confirm (kprobe)",
                                Some(row.confirm_failed),
                                Some((row.insert_failed, "nf_conntrack stat insert_failed")),
                            ),
                            ev(
                                "packets dropped by a netfilter verdict (nf_hook_slow)",
                                Some(row.verdict_drops),
                                None,
                            ),
                        ]
                    } else {
                        vec![ev(
                            "packets dropped by a netfilter verdict (nf_hook_slow)",
                            Some(row.verdict_drops),
                            Some((row.insert_failed, "nf_conntrack stat insert_failed")),
                        )]
                    },
                    remedy: vec![
                        "DNS is the usual victim (a lost query waits out the resolver's 5 s \
                         timeout): `options single-request-reopen` in resolv.conf (the pod's \
                         dnsConfig) sends A and AAAA from separate sockets, `options use-vc` \
                         sends DNS over TCP"
                            .into(),
                        "NodeLocal DNSCache: pods query a cache on the node without DNAT or \
                         conntrack, and the cache goes upstream over TCP"
                            .into(),
                        "kernels from 5.6 on resolve a clash of one flow's packets on the original \
                         tuple, DNAT to different backends included (nf_ct_resolve_clash_harder; \
                         `clashres` in /proc/net/stat/nf_conntrack); what still fails is a clash \
                         on the reply tuple, flows of different sources NATed to one source \
                         port: `random-fully` on masquerade/SNAT rules makes that unlikely"
                            .into(),
                    ],
                });
            }
            // Rule drops are policy; verdict drops beyond conntrack's own are other hooks' rules
            // (iptables, ebtables).
            let other_verdicts =
                row.verdict_drops.saturating_sub(row.table_full_drops + row.insert_failed);
            let policy = row.rule_drops + other_verdicts;
            if policy > 0 {
                out.push(Finding {
                    id: FindingId::NetfilterPolicyDrop,
                    facts: Vec::new(),
                    severity: Severity::Warning,
                    summary: format!(
                        "{}: {policy} packets dropped by firewall rules (nftables/iptables, \
                         NetworkPolicy)",
                        row.pod
                    ),
                    pods: vec![row.pod.clone()],
                    window: c.pod_window(&[Metric::RULE_DROPS, Metric::VERDICT_DROPS], row.netns),
                    evidence: vec![
                        ev(
                            "dropped by an nf_tables rule (nft_do_chain)",
                            Some(row.rule_drops),
                            None,
                        ),
                        ev(
                            "dropped by another hook's verdict (nf_hook_slow), beyond conntrack's",
                            Some(other_verdicts),
                            None,
                        ),
                    ],
                    remedy: vec![
                        format!(
                            "check the rules in {}'s network namespace (`nft list ruleset`, \
                             `iptables-save`) and the NetworkPolicies that select it; the kernel \
                             counts these only where a rule has a counter",
                            row.pod
                        ),
                        format!(
                            "`netprobe watch --pod {} --events drops` shows the flows",
                            row.pod
                        ),
                    ],
                });
            }
        }
    }
}
