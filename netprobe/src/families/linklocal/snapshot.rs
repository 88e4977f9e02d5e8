//! The linklocal family's rows of a counter snapshot: exact packets per netns, destination,
//! direction, remote address and port.

use std::net::IpAddr;

use netprobe_common::linklocal::LinkLocalKey;

use super::{Destination, Direction};
use crate::{
    families::counts::{CountKey, NetnsCounts},
    family::Family,
    names::Names,
};

/// Packets of one pod to or from one link-local or cluster DNS address and port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkLocalRow {
    pub netns: u32,
    pub destination: Destination,
    pub direction: Direction,
    pub proto: String,
    /// The remote end: the service's address and port.
    pub addr: IpAddr,
    pub port: u16,
    pub packets: u64,
}

pub type Counts = NetnsCounts<LinkLocalKey>;

impl CountKey for LinkLocalKey {
    const FAMILY: Family = Family::Linklocal;
    const MAP: &'static str = super::COUNTS_MAP;
    type Row = LinkLocalRow;

    fn netns(&self) -> u32 {
        self.netns
    }

    fn row(self, packets: u64, _: &Names) -> Option<LinkLocalRow> {
        super::row(&self, packets)
    }
}
