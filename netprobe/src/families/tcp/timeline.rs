//! The tcp family's series.

use crate::{
    frames::Snapshot,
    report::timeline::{Add, Metric, Subject},
};

impl Metric {
    /// Label: the TCP event (retransmit, syn_retransmit, ...), in segments.
    pub const TCP: Metric = Metric::counted(200, "tcp");
}

pub fn totals(s: &Snapshot, add: &mut Add) {
    for t in &s.rows.tcp {
        add(Metric::TCP, Subject::Netns(t.netns), t.event.as_str().to_owned(), t.count);
    }
}
