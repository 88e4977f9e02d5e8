//! The conntrack family's rows of a counter snapshot: at the kprobe tier, the kernel's own
//! conntrack failures per netns, a row per (netns, kind).

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
    /// New entries __nf_conntrack_confirm did not insert (their packets dropped): a lost race
    /// or a hash chain too long. Absent from recordings made before it was counted.
    #[serde(default)]
    pub confirm_failed: u64,
}

pub type Counts = NetnsCounts<CtKey>;

impl CountKey for CtKey {
    const FAMILY: Family = Family::Conntrack;
    const MAP: &'static str = super::COUNTS_MAP;
    type Row = ConntrackCountRow;

    fn netns(&self) -> u32 {
        self.netns
    }

    fn row(self, n: u64, _: &Names) -> Option<ConntrackCountRow> {
        let row = ConntrackCountRow { netns: self.netns, alloc_failed: 0, confirm_failed: 0 };
        match self.kind {
            kind::ALLOC_FAILED => Some(ConntrackCountRow { alloc_failed: n, ..row }),
            kind::CONFIRM_FAILED => Some(ConntrackCountRow { confirm_failed: n, ..row }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::tests::fixture;

    #[test]
    fn each_kind_fills_its_own_column() {
        let names = fixture();
        let key = |kind| CtKey { netns: 7, kind };
        let alloc = key(kind::ALLOC_FAILED).row(3, &names).unwrap();
        assert_eq!((alloc.alloc_failed, alloc.confirm_failed), (3, 0));
        let confirm = key(kind::CONFIRM_FAILED).row(5, &names).unwrap();
        assert_eq!((confirm.alloc_failed, confirm.confirm_failed), (0, 5));
        assert_eq!(key(99).row(1, &names), None);
    }

    #[test]
    fn rows_recorded_before_confirm_failures_were_counted_still_read() {
        let row: ConntrackCountRow =
            serde_json::from_str(r#"{"netns":7,"alloc_failed":2}"#).unwrap();
        assert_eq!(row.confirm_failed, 0);
    }
}
