//! The tcp family's /metrics: retransmits and resets per pod and event.

use crate::daemon::metrics::{with, Builder, Inputs};

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        let rows = &i.snapshot.rows.tcp;
        b.counter(
            "netprobe_tcp_events",
            "TCP retransmits (segments, by kind; failed ones by what the kernel returned) and \
             resets sent and received, by pod (exact)",
            rows.iter().filter_map(|t| {
                let mut labels = vec![("event", t.event.as_str().to_owned())];
                labels.extend(t.error.clone().map(|e| ("error", e)));
                Some((with(i.pod(t.netns)?, &labels), t.count))
            }),
        );
        b.map_entries("tcp", rows.len());
    }
}
