//! The ports family's /metrics: failed connect() and bind() calls per pod, call and errno.

use crate::daemon::metrics::{with, Builder, Inputs};

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        let rows = &i.snapshot.rows.ports;
        b.counter(
            "netprobe_port_errors",
            "connect() and bind() calls that failed with EADDRNOTAVAIL or EADDRINUSE, by pod",
            rows.iter().filter_map(|p| {
                let extra = [("call", p.op.as_str().to_owned()), ("errno", p.errno.clone())];
                Some((with(i.pod(p.netns)?, &extra), p.count))
            }),
        );
        b.map_entries("ports", rows.len());
    }
}
