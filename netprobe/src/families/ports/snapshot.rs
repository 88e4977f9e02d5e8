//! The ports family's rows of a counter snapshot: exact counts per netns, call and errno.

use super::PortOp;
use crate::{agent::Agent, error::Error};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRow {
    pub netns: u32,
    pub op: PortOp,
    pub errno: String,
    pub count: u64,
}

pub fn read(agent: &Agent) -> Result<Vec<PortRow>, Error> {
    Ok(agent
        .port_counts()?
        .into_iter()
        .map(|(k, count)| PortRow {
            netns: k.netns,
            op: PortOp::from_wire(k.op),
            errno: super::errno_name(k.errno),
            count,
        })
        .collect())
}
