//! The softnet family's rows of a counter snapshot: exact counts per CPU, when it runs.

use super::CpuSoftnet;
use crate::{agent::Agent, error::Error};

pub fn read(agent: &Agent) -> Result<Vec<CpuSoftnet>, Error> {
    agent.softnet()
}
