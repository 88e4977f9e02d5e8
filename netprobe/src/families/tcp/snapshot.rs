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
    /// `retransmit_failed`: what tcp_retransmit_skb returned. Absent from older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
        let event = TcpEventKind::from_wire(self.kind);
        let failed = event == TcpEventKind::RetransmitFailed;
        let error = failed.then(|| super::decode::return_code(self.error as i32));
        Some(TcpRow { netns: self.netns, event, error, count })
    }
}
