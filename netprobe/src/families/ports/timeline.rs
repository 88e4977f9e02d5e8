//! The ports family's series.

use crate::{
    frames::Snapshot,
    report::timeline::{Add, Metric, Subject},
};

impl Metric {
    /// Label: `call errno`.
    pub const PORT_ERRORS: Metric = Metric::counted(300, "port_errors");
}

pub fn totals(s: &Snapshot, add: &mut Add) {
    for p in &s.rows.ports {
        let label = format!("{} {}", p.op, p.errno);
        add(Metric::PORT_ERRORS, Subject::Netns(p.netns), label, p.count);
    }
}
