//! netprobe's own counters: what it could not see or keep.

/// The agent's own counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub lost_samples: u64,
    pub counter_overflow: u64,
    pub read_errors: u64,
}
