//! The ENA allowance counters on /metrics, by interface.

use super::{allowance, AVAILABLE};
use crate::daemon::metrics::{Builder, Inputs, Labels};

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        let ena =
            || i.snapshot.kernel.ena.iter().flat_map(|c| c.counters.iter().map(move |n| (c, n)));
        b.counter(
            "netprobe_ena_allowance_exceeded",
            "Packets an EC2 instance allowance queued or dropped, by interface and allowance (the \
             ENA driver's <allowance>_allowance_exceeded)",
            ena().filter_map(|(c, (name, v))| {
                let labels: Labels = vec![
                    ("interface", c.interface.clone()),
                    ("allowance", allowance(name)?.to_owned()),
                ];
                Some((labels, *v))
            }),
        );
        b.gauge(
            "netprobe_ena_conntrack_allowance_available",
            "Connections the instance may still track, by interface (the ENA driver's \
             conntrack_allowance_available)",
            ena()
                .filter(|(_, (name, _))| *name == AVAILABLE)
                .map(|(c, (_, v))| (vec![("interface", c.interface.clone())], *v as f64)),
        );
    }
}
