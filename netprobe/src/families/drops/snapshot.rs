//! The drops family's exact counts per netns, reason and location, and its rows of a counter
//! snapshot.

use netprobe_common::drops::DropKey;

use crate::{
    families::counts::{CountKey, NetnsCounts},
    family::Family,
    names::Names,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DropRow {
    pub netns: u32,
    pub reason: u32,
    /// `function+0xoff`, symbolized when recorded.
    pub location: String,
    pub count: u64,
}

pub type Counts = NetnsCounts<DropKey>;

impl CountKey for DropKey {
    const FAMILY: Family = Family::Drops;
    const MAP: &'static str = super::COUNTS_MAP;
    type Row = DropRow;

    fn netns(&self) -> u32 {
        self.netns
    }

    fn row(self, count: u64, names: &Names) -> Option<DropRow> {
        let location = names.kallsyms.symbolize(self.location);
        Some(DropRow { netns: self.netns, reason: self.reason, location, count })
    }
}
