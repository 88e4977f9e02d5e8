//! The drops family's series: per reason, per location, and by the site that freed them.

use super::sites;
use crate::{
    frames::Snapshot,
    reasons::Reasons,
    report::timeline::{Add, Metric, Subject},
};

impl Metric {
    /// netprobe, exact. Label: the drop reason.
    pub const DROPS: Metric = Metric::counted(100, "drops");
    /// Label: `location reason`.
    pub const DROP_LOCATION: Metric = Metric::counted(101, "drop_location");
    /// Drops freed where a netfilter hook returned NF_DROP (conntrack, when its table is full).
    pub const VERDICT_DROPS: Metric = Metric::counted(102, "verdict_drops");
    /// Drops freed by an nf_tables rule.
    pub const RULE_DROPS: Metric = Metric::counted(103, "rule_drops");
    /// Drops freed where a CPU's backlog was full.
    pub const BACKLOG_DROPS: Metric = Metric::counted(104, "backlog_drops");
    /// Skbs freed by a closing socket's queue purge.
    pub const TEARDOWN_DROPS: Metric = Metric::counted(105, "teardown_drops");
    /// Drops of traffic nobody in the pod wanted (`sites::background`).
    pub const BACKGROUND_DROPS: Metric = Metric::counted(106, "background_drops");
}

pub fn totals(s: &Snapshot, reasons: &Reasons, add: &mut Add) {
    for d in &s.rows.drops {
        let (ns, reason) = (Subject::Netns(d.netns), reasons.name(d.reason));
        add(Metric::DROP_LOCATION, ns, format!("{} {reason}", d.location), d.count);
        let site = match sites::function(&d.location) {
            sites::HOOK_VERDICT => Some(Metric::VERDICT_DROPS),
            sites::NFT_RULE => Some(Metric::RULE_DROPS),
            sites::BACKLOG_FULL => Some(Metric::BACKLOG_DROPS),
            sites::SOCKET_TEARDOWN => Some(Metric::TEARDOWN_DROPS),
            f if sites::background(f, &reason) => Some(Metric::BACKGROUND_DROPS),
            _ => None,
        };
        if let Some(m) = site {
            add(m, ns, reason.clone(), d.count);
        }
        add(Metric::DROPS, ns, reason, d.count);
    }
}
