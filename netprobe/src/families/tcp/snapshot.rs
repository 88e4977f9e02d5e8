//! The tcp family's rows of a counter snapshot: exact counts per netns and event.

use super::TcpEventKind;
use crate::{agent::Agent, error::Error};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpRow {
    pub netns: u32,
    pub event: TcpEventKind,
    pub count: u64,
}

pub fn read(agent: &Agent) -> Result<Vec<TcpRow>, Error> {
    Ok(agent
        .tcp_counts()?
        .into_iter()
        .map(|(k, count)| TcpRow { netns: k.netns, event: TcpEventKind::from_wire(k.kind), count })
        .collect())
}
