//! The linklocal family's /metrics: packets per pod, service and direction.

use crate::daemon::metrics::{with, Builder, Inputs};

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        b.counter(
            "netprobe_linklocal_packets",
            "Packets of a pod's sockets to and from link-local services (VPC DNS resolver, \
             instance metadata, time sync) and DNS to the cluster DNS IPs, by service and \
             direction (exact; with --events linklocal)",
            i.snapshot.rows.linklocal.iter().filter_map(|l| {
                let service = format!("{}/{}", std::net::SocketAddr::new(l.addr, l.port), l.proto);
                let extra = [
                    ("destination", l.destination.as_str().into()),
                    ("direction", l.direction.as_str().into()),
                    ("service", service),
                ];
                Some((with(i.pod(l.netns)?, &extra), l.packets))
            }),
        );
    }
}
