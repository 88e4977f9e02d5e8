//! Microbursts: packets and bytes per interface in fixed time bins, per CPU, on the receive
//! path. The per-packet work is one bin increment. Userspace merges CPUs, reads finished
//! bins on a timer and finds bursts.

/// Bins kept per interface per CPU: at 1 ms bins, 256 ms of history for the reader.
pub const RING: usize = 256;
/// Interfaces tracked, by `ifindex % SLOTS` within the watched netns.
pub const SLOTS: u32 = 128;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bin {
    /// The bin's number (time / width), truncated: tells a live bin from a stale one.
    pub id: u32,
    pub packets: u32,
    pub bytes: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfaceBins {
    pub bins: [Bin; RING],
}

/// Written by userspace, read per packet: the netns watched and the bin width (0: off).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstConfig {
    pub netns: u32,
    pub bin_ns: u32,
}

crate::user_pod!(Bin, IfaceBins, BurstConfig);
