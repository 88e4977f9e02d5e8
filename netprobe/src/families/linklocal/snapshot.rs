//! The linklocal family's rows of a counter snapshot: exact packets per netns, destination,
//! direction, remote address and port.

use std::net::IpAddr;

use super::{Destination, Direction};
use crate::{agent::Agent, error::Error};

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

pub fn read(agent: &Agent) -> Result<Vec<LinkLocalRow>, Error> {
    Ok(agent
        .linklocal_counts()?
        .iter()
        .filter_map(|(k, packets)| super::row(k, *packets))
        .collect())
}
