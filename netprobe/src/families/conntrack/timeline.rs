//! The conntrack family's series.

use crate::{
    frames::Snapshot,
    report::timeline::{Add, Metric, Subject},
};

impl Metric {
    /// Conntrack entries not allocated, the table full (kprobe tier), per netns.
    pub const CONNTRACK_ALLOC_FAILED: Metric = Metric::counted(350, "conntrack_alloc_failed");
    /// Conntrack entries not inserted at confirmation, their packets dropped (kprobe tier).
    pub const CONNTRACK_CONFIRM_FAILED: Metric = Metric::counted(351, "conntrack_confirm_failed");
}

pub fn totals(s: &Snapshot, add: &mut Add) {
    for c in &s.rows.conntrack {
        let netns = Subject::Netns(c.netns);
        add(Metric::CONNTRACK_ALLOC_FAILED, netns, String::new(), c.alloc_failed);
        add(Metric::CONNTRACK_CONFIRM_FAILED, netns, String::new(), c.confirm_failed);
    }
}
