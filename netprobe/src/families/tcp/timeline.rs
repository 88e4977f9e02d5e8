//! The tcp family's series.

use crate::{
    frames::Snapshot,
    report::timeline::{Add, Metric, Subject},
};

impl Metric {
    /// Label: the TCP event (retransmit, syn_retransmit, ...), in segments; with what was
    /// returned for retransmit_failed (`retransmit_failed EPERM`).
    pub const TCP: Metric = Metric::counted(200, "tcp");
}

pub fn totals(s: &Snapshot, add: &mut Add) {
    for t in &s.rows.tcp {
        let label = match &t.error {
            Some(e) => format!("{} {e}", t.event.as_str()),
            None => t.event.as_str().to_owned(),
        };
        add(Metric::TCP, Subject::Netns(t.netns), label, t.count);
    }
}
