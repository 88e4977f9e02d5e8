//! The tcp family's exact counts per netns and event, and its rows of a counter snapshot.

use netprobe_common::tcp::TcpKey;

use super::TcpEventKind;
use crate::{
    families::counts::{CountKey, NetnsCounts},
    family::Family,
    names::Names,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpRow {
    pub netns: u32,
    pub event: TcpEventKind,
    pub count: u64,
}

pub type Counts = NetnsCounts<TcpKey>;

impl CountKey for TcpKey {
    const FAMILY: Family = Family::Tcp;
    const MAP: &'static str = super::COUNTS_MAP;
    type Row = TcpRow;

    fn netns(&self) -> u32 {
        self.netns
    }

    fn row(self, count: u64, _: &Names) -> Option<TcpRow> {
        Some(TcpRow { netns: self.netns, event: TcpEventKind::from_wire(self.kind), count })
    }
}
