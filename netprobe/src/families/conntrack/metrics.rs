//! The conntrack family's /metrics: each pod's own nf_conntrack stats and table size.

use crate::{
    daemon::metrics::{Builder, Inputs, Labels},
    kstat::NetnsCounters,
};

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        b.counter(
            "netprobe_conntrack_drops",
            "New connections dropped because the pod's conntrack table was full (its \
             nf_conntrack stat drop)",
            i.per_pod(|c| c.conntrack.map(|c| c.drop)),
        );
        b.counter(
            "netprobe_conntrack_insert_failed",
            "Conntrack inserts that lost a race, whose packets were dropped, by pod",
            i.per_pod(|c| c.conntrack.map(|c| c.insert_failed)),
        );
        b.counter(
            "netprobe_conntrack_early_drops",
            "Conntrack entries evicted to make room, by pod",
            i.per_pod(|c| c.conntrack.map(|c| c.early_drop)),
        );
        let gauge = |f: fn(&NetnsCounters) -> Option<u64>| -> Vec<(Labels, f64)> {
            i.per_pod(f).into_iter().map(|(l, v)| (l, v as f64)).collect()
        };
        b.gauge(
            "netprobe_conntrack_entries",
            "Entries in the pod's conntrack table",
            gauge(|c| c.conntrack.map(|c| c.count)),
        );
        b.gauge(
            "netprobe_conntrack_max",
            "The pod's conntrack table limit (net.netfilter.nf_conntrack_max)",
            gauge(|c| c.conntrack.map(|c| c.max)),
        );
    }
}
