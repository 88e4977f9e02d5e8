//! The conntrack family's rows of a counter snapshot: at the kprobe tier, the kernel's own
//! conntrack failures per netns.

use netprobe_common::conntrack::{kind, CtKey};

use crate::{
    families::counts::{CountKey, NetnsCounts},
    family::Family,
    names::Names,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConntrackCountRow {
    pub netns: u32,
    /// New entries __nf_conntrack_alloc could not allocate: the table full, nothing evictable.
    pub alloc_failed: u64,
}

pub type Counts = NetnsCounts<CtKey>;

impl CountKey for CtKey {
    const FAMILY: Family = Family::Conntrack;
    const MAP: &'static str = super::COUNTS_MAP;
    type Row = ConntrackCountRow;

    fn netns(&self) -> u32 {
        self.netns
    }

    fn row(self, alloc_failed: u64, _: &Names) -> Option<ConntrackCountRow> {
        (self.kind == kind::ALLOC_FAILED)
            .then_some(ConntrackCountRow { netns: self.netns, alloc_failed })
    }
}
