//! The drops family's /metrics: drops per pod and reason, and each pod's top locations.

use std::collections::BTreeMap;

use crate::daemon::metrics::{with, Builder, Inputs};

/// Kernel locations per pod in `netprobe_drop_locations_total`; the rest sum into `other`.
pub const TOP_LOCATIONS: usize = 10;

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        let mut drops: BTreeMap<(u32, String), u64> = BTreeMap::new();
        let mut locations: BTreeMap<u32, Vec<(String, String, u64)>> = BTreeMap::new();
        let rows = &i.snapshot.rows.drops;
        for d in rows {
            let reason = i.header.reasons.name(d.reason);
            *drops.entry((d.netns, reason.clone())).or_default() += d.count;
            locations.entry(d.netns).or_default().push((d.location.clone(), reason, d.count));
        }
        b.counter(
            "netprobe_drops",
            "Packets the kernel dropped, by pod and drop reason (exact, since the agent started)",
            drops
                .iter()
                .filter_map(|((n, r), v)| Some((with(i.pod(*n)?, &[("reason", r.clone())]), *v))),
        );
        let mut located = Vec::new();
        for (netns, mut rows) in locations {
            let Some(labels) = i.pod(netns) else { continue };
            rows.sort_by_key(|r| std::cmp::Reverse(r.2));
            let other: u64 = rows.iter().skip(TOP_LOCATIONS).map(|r| r.2).sum();
            for (location, reason, v) in rows.into_iter().take(TOP_LOCATIONS) {
                let l = with(labels.clone(), &[("location", location), ("reason", reason)]);
                located.push((l, v));
            }
            if other > 0 {
                let l = with(labels, &[("location", "other".into()), ("reason", "other".into())]);
                located.push((l, other));
            }
        }
        b.counter(
            "netprobe_drop_locations",
            "Packets dropped, by pod and the kernel function that dropped them: each pod's top \
             locations, the rest as location=\"other\"",
            located,
        );
        b.map_entries("drops", rows.len());
    }
}
