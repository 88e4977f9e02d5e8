//! The drops family's rows of a counter snapshot: exact counts per netns, reason and location.

use crate::{agent::Agent, error::Error};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DropRow {
    pub netns: u32,
    pub reason: u32,
    /// `function+0xoff`, symbolized when recorded.
    pub location: String,
    pub count: u64,
}

pub fn read(agent: &Agent) -> Result<Vec<DropRow>, Error> {
    let kallsyms = &agent.names().kallsyms;
    Ok(agent
        .drop_counts()?
        .into_iter()
        .map(|(k, count)| DropRow {
            netns: k.netns,
            reason: k.reason,
            location: kallsyms.symbolize(k.location),
            count,
        })
        .collect())
}
