//! NET_RX softirq runs per CPU: how long, how many packets, and whether the kernel squeezed
//! them (stopped on netdev_budget or netdev_budget_usecs with work left).

use crate::event::EventHeader;

/// Per CPU, summed over the CPU's NET_RX softirq runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftnetCounters {
    pub runs: u64,
    pub packets: u64,
    pub busy_ns: u64,
    /// Increments of the CPU's own softnet_data.time_squeeze during runs.
    pub squeezes: u64,
    /// Runs whose squeeze could be read: the CPU's softnet_data is learned at its first
    /// backlog poll, so runs that ended before that are not covered.
    pub covered_runs: u64,
}

/// The run in progress on one CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    pub start_ns: u64,
    pub packets: u64,
    /// time_squeeze as last read on this CPU.
    pub last_squeeze: u32,
    pub active: u8,
    pub covered: u8,
    pub _pad: u16,
}

/// A squeezed run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqueezeEvent {
    pub header: EventHeader,
    pub duration_ns: u64,
    pub packets: u64,
    pub squeezes: u32,
    pub _pad: u32,
}

crate::user_pod!(SoftnetCounters, Run, SqueezeEvent);
