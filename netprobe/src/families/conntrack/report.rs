//! Conntrack in the report: per pod with trouble or a nearly full table, its own table's
//! counters beside the drops freed at netfilter's verdict and by nf_tables rules.

use std::collections::HashMap;

use super::{NODE_WIDE, UTILISATION_WARN};
use crate::{
    event::Event,
    families::drops::report::{rows, DropCount},
    family::Family,
    frames::{Frame, Snapshot},
    reasons::Reasons,
    report::{
        section::{self, Context, Section},
        text::table,
        timeline::{Add, Metric, Subject, Timeline},
        Report,
    },
};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConntrackRow {
    pub pod: String,
    pub netns: u32,
    /// From the netns's own conntrack counters, growth over the report.
    pub table_full_drops: u64,
    pub insert_failed: u64,
    pub early_drop: u64,
    pub invalid: u64,
    /// Drops freed in nf_hook_slow: a hook's verdict (conntrack's, when the table
    /// is full), counted exactly by the drops family.
    pub verdict_drops: u64,
    /// Drops freed in nft_do_chain: an nf_tables rule (policy), counted exactly.
    pub rule_drops: u64,
    /// The fullest the table was seen: entries and limit.
    pub peak_count: u64,
    pub max: u64,
    /// The kernel's rate-limited "table full in netns" lines seen (a signal, not a count).
    pub table_full_messages: u64,
    /// Exact, where conntrack runs at the kprobe tier (else 0): new entries the kernel could
    /// not allocate, the table full, counted at __nf_conntrack_alloc's return.
    pub alloc_failed: u64,
    /// Exact, where conntrack runs at the kprobe tier (else 0): new entries not inserted at
    /// __nf_conntrack_confirm's return, their packets dropped; the kernel counts them in
    /// `insert_failed`.
    pub confirm_failed: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Conntrack {
    /// Per pod with conntrack trouble or a nearly full table.
    pub conntrack: Vec<ConntrackRow>,
}

#[derive(Default)]
pub struct Part {
    /// Per netns: the fullest its conntrack table was seen, and its limit.
    peak: HashMap<u32, (u64, u64)>,
    table_full_messages: HashMap<u32, u64>,
    samples: u64,
}

impl section::Part for Part {
    type Section = Conntrack;

    fn totals(s: &Snapshot, _: &Reasons, add: &mut Add) {
        super::timeline::totals(s, add);
    }

    fn frame(&mut self, frame: &Frame, _: &Timeline) {
        match frame {
            Frame::Snapshot(s) => {
                for (netns, c) in &s.kernel.netns {
                    if let Some(ct) = c.conntrack {
                        let peak = self.peak.entry(*netns).or_default();
                        *peak = (peak.0.max(ct.count), ct.max);
                    }
                }
            }
            Frame::Event(Event::ConntrackTableFull(m)) => {
                self.samples += 1;
                *self.table_full_messages.entry(m.netns).or_default() += 1;
            }
            _ => {}
        }
    }

    fn samples(&self) -> u64 {
        self.samples
    }

    fn section(&self, c: &Context) -> Conntrack {
        let verdict = rows(c, Metric::VERDICT_DROPS);
        let rule = rows(c, Metric::RULE_DROPS);
        let sum_for = |rows: &[DropCount], netns| {
            rows.iter().filter(|d| d.netns == netns).map(|d| d.count).sum::<u64>()
        };
        let mut conntrack: Vec<ConntrackRow> = Vec::new();
        let per_netns = |metric| {
            let mut by: HashMap<u32, u64> = HashMap::new();
            for (s, _, count) in c.timeline.totals(metric) {
                *by.entry(c.inode(Context::id_of(s))).or_default() += count;
            }
            by
        };
        let alloc_failed = per_netns(Metric::CONNTRACK_ALLOC_FAILED);
        let confirm_failed = per_netns(Metric::CONNTRACK_CONFIRM_FAILED);
        let mut netns_seen: Vec<u32> = verdict.iter().chain(&rule).map(|d| d.netns).collect();
        netns_seen.extend(alloc_failed.keys());
        netns_seen.extend(confirm_failed.keys());
        netns_seen.extend(c.kernel.keys());
        netns_seen.extend(self.peak.keys());
        netns_seen.extend(self.table_full_messages.keys());
        netns_seen.sort_unstable();
        netns_seen.dedup();
        // Messages that name no netns may be any pod's: kept in a report limited to pods too.
        let node_wide = |n: u32| n == NODE_WIDE && self.table_full_messages.contains_key(&n);
        for netns in netns_seen.into_iter().filter(|n| c.keep(Subject::Netns(*n)) || node_wide(*n))
        {
            let k = c.kernel.get(&netns).cloned().unwrap_or_default();
            let (peak, max) = self.peak.get(&netns).copied().unwrap_or_default();
            let row = ConntrackRow {
                pod: c.name(netns),
                netns,
                table_full_drops: k.conntrack_drop,
                insert_failed: k.conntrack_insert_failed,
                early_drop: k.conntrack_early_drop,
                invalid: k.conntrack_invalid,
                verdict_drops: sum_for(&verdict, netns),
                rule_drops: sum_for(&rule, netns),
                peak_count: peak,
                max,
                table_full_messages: self.table_full_messages.get(&netns).copied().unwrap_or(0),
                alloc_failed: alloc_failed.get(&netns).copied().unwrap_or(0),
                confirm_failed: confirm_failed.get(&netns).copied().unwrap_or(0),
            };
            let full = max > 0 && peak as f64 >= max as f64 * UTILISATION_WARN;
            let trouble = row.table_full_drops
                + row.insert_failed
                + row.early_drop
                + row.invalid
                + row.verdict_drops
                + row.rule_drops
                + row.table_full_messages
                + row.alloc_failed
                + row.confirm_failed;
            if trouble > 0 || full {
                conntrack.push(row);
            }
        }
        conntrack.sort_by(|a, b| {
            (b.table_full_drops + b.verdict_drops).cmp(&(a.table_full_drops + a.verdict_drops))
        });
        Conntrack { conntrack }
    }
}

impl Section for Conntrack {
    const TEXT: u8 = 60;

    fn text(&self, r: &Report) -> String {
        if !r.ran(Family::Conntrack) {
            return String::new();
        }
        let mut s = "\nConntrack by pod (counters of the pod's own table; drops split by where they were freed)\n".to_owned();
        let rows = self.conntrack.iter().map(|c| {
            let fill = if c.max > 0 {
                format!(
                    "{}/{} ({:.0}%)",
                    c.peak_count,
                    c.max,
                    100.0 * c.peak_count as f64 / c.max as f64
                )
            } else {
                "-".into()
            };
            [
                c.pod.clone(),
                c.table_full_drops.to_string(),
                c.insert_failed.to_string(),
                c.early_drop.to_string(),
                c.verdict_drops.to_string(),
                c.rule_drops.to_string(),
                fill,
                c.table_full_messages.to_string(),
            ]
        });
        s += &table(
            [
                "POD",
                "TABLE FULL",
                "INSERT FAILED",
                "EARLY DROP",
                "VERDICT DROPS",
                "RULE DROPS",
                "PEAK FILL",
                "KERNEL MSGS",
            ],
            rows,
        );
        s
    }
}
