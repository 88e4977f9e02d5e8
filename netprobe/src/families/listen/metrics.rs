//! The listen part's /metrics: accept-queue overflows per pod, from its own TcpExt.

use crate::daemon::metrics::{Builder, Inputs};

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        b.counter(
            "netprobe_listen_overflows",
            "Connection attempts dropped on a full accept queue, by pod (the pod's own TcpExt \
             ListenOverflows)",
            i.per_pod(|c| Some(c.listen_overflows)),
        );
    }
}
