//! The softnet family's series, per CPU.

use crate::{
    frames::Snapshot,
    report::timeline::{Add, Metric, Subject},
};

impl Metric {
    pub const SOFTNET_RUNS: Metric = Metric::counted(400, "softnet_runs");
    pub const SOFTNET_PACKETS: Metric = Metric::counted(401, "softnet_packets");
    pub const SOFTNET_BUSY_NS: Metric = Metric::counted(402, "softnet_busy_ns");
    pub const SQUEEZES: Metric = Metric::counted(403, "squeezes");
    pub const SQUEEZE_COVERED_RUNS: Metric = Metric::counted(404, "squeeze_covered_runs");
}

pub fn totals(s: &Snapshot, add: &mut Add) {
    for c in &s.rows.softnet {
        let cpu = Subject::Cpu(c.cpu);
        add(Metric::SOFTNET_RUNS, cpu, String::new(), c.runs);
        add(Metric::SOFTNET_PACKETS, cpu, String::new(), c.packets);
        add(Metric::SOFTNET_BUSY_NS, cpu, String::new(), c.busy_ns);
        add(Metric::SQUEEZES, cpu, String::new(), c.squeezes);
        add(Metric::SQUEEZE_COVERED_RUNS, cpu, String::new(), c.covered_runs);
    }
}
