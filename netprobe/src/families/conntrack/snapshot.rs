//! The conntrack family's rows of a counter snapshot: at the kprobe tier, the kernel's own
//! conntrack failures per netns.

use netprobe_common::conntrack::kind;

use crate::{agent::Agent, error::Error};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConntrackCountRow {
    pub netns: u32,
    /// New entries __nf_conntrack_alloc could not allocate: the table full, nothing evictable.
    pub alloc_failed: u64,
}

pub fn read(agent: &Agent) -> Result<Vec<ConntrackCountRow>, Error> {
    Ok(agent
        .conntrack_counts()?
        .into_iter()
        .filter(|(k, _)| k.kind == kind::ALLOC_FAILED)
        .map(|(k, alloc_failed)| ConntrackCountRow { netns: k.netns, alloc_failed })
        .collect())
}
