//! The softnet family's /metrics: NET_RX runs, squeezes and backlog drops per CPU.

use crate::daemon::metrics::{Builder, Inputs, Labels};

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        let cpu = |c: u32| -> Labels { vec![("cpu", c.to_string())] };
        let s = i.snapshot;
        b.counter(
            "netprobe_softnet_runs",
            "NET_RX softirq runs per CPU, exact while softnet's per-run hooks are attached (with the default families: while CPUs squeeze)",
            s.rows.softnet.iter().map(|c| (cpu(c.cpu), c.runs)),
        );
        b.counter(
            "netprobe_softnet_squeezes",
            "NET_RX runs cut short on net.core.netdev_budget(_usecs) with packets left, per CPU",
            s.rows.softnet.iter().map(|c| (cpu(c.cpu), c.squeezes)),
        );
        b.counter(
            "netprobe_softnet_backlog_drops",
            "Packets dropped because the CPU's input backlog was full (softnet_stat dropped)",
            s.kernel.softnet_stat.iter().map(|c| (cpu(c.cpu), c.dropped)),
        );
    }
}
