//! Indices into the per-CPU `STATS` array: the agent's own health counters.

pub const LOST_SAMPLES: u32 = 0;
/// Events that found their counter map full; counted here instead.
pub const COUNTER_MAP_FULL: u32 = 1;
/// A kernel read (bpf_probe_read_kernel) failed; the record was sent with what was read.
pub const READ_ERRORS: u32 = 2;
pub const LEN: u32 = 3;
