//! The tcp family's rows of a counter snapshot: exact counts per netns and event.

use super::TcpEventKind;
use crate::{agent::Agent, error::Error};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpRow {
    pub netns: u32,
    pub event: TcpEventKind,
    /// `retransmit_failed`: what tcp_retransmit_skb returned. Absent from older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub count: u64,
}

pub fn read(agent: &Agent) -> Result<Vec<TcpRow>, Error> {
    Ok(agent
        .tcp_counts()?
        .into_iter()
        .map(|(k, count)| {
            let event = TcpEventKind::from_wire(k.kind);
            let failed = event == TcpEventKind::RetransmitFailed;
            TcpRow {
                netns: k.netns,
                event,
                error: failed.then(|| super::decode::return_code(k.error as i32)),
                count,
            }
        })
        .collect())
}
