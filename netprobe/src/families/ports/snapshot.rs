//! The ports family's exact counts per netns, call and errno, and its rows of a counter
//! snapshot.

use netprobe_common::ports::PortKey;

use super::PortOp;
use crate::{
    families::counts::{CountKey, NetnsCounts},
    family::Family,
    names::Names,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRow {
    pub netns: u32,
    pub op: PortOp,
    pub errno: String,
    pub count: u64,
}

pub type Counts = NetnsCounts<PortKey>;

impl CountKey for PortKey {
    const FAMILY: Family = Family::Ports;
    const MAP: &'static str = super::COUNTS_MAP;
    type Row = PortRow;

    fn netns(&self) -> u32 {
        self.netns
    }

    fn row(self, count: u64, _: &Names) -> Option<PortRow> {
        let (op, errno) = (PortOp::from_wire(self.op), super::errno_name(self.errno));
        Some(PortRow { netns: self.netns, op, errno, count })
    }
}
