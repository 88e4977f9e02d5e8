//! Microbursts: packets and bytes per interface and direction in fixed time bins, per CPU.
//! Per packet the kernel bumps one bin and, when that bin is over the threshold userspace
//! set, extends the CPU's open burst; a burst's one summary record goes out when it ends.
//! Userspace reads the bins on a timer for histograms and exact sums.

use crate::event::EventHeader;

/// Bins kept per interface per CPU: at 1 ms bins, 256 ms of history for the reader.
pub const RING: usize = 256;
/// Interfaces tracked per direction within the watched netns.
pub const SLOTS: u32 = 128;
/// An interface takes the first free of the `PROBES` slots from `ifindex % SLOTS` on: a
/// node's ifindexes grow past SLOTS as pods come and go, so some share a remainder. The
/// kernel looks no further than an empty slot.
pub const PROBES: u32 = 4;

/// Directions; a slot's index is `direction * SLOTS + (ifindex + probe) % SLOTS`.
pub const RX: u32 = 0;
pub const TX: u32 = 1;
pub const DIRECTIONS: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bin {
    /// The bin's number (time / width), truncated: tells a live bin from a stale one.
    pub id: u32,
    pub packets: u32,
    pub bytes: u64,
}

/// One CPU's run of bins over the threshold on one interface and direction (with the bin
/// before it when that was busy: its leading edge). Open while `bins > 0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Burst {
    /// Bin number of its first bin, truncated like `Bin::id`.
    pub first_bin: u32,
    pub bins: u32,
    pub packets: u64,
    pub bytes: u64,
    /// Packets in its busiest bin.
    pub peak_packets: u32,
    pub ifindex: u32,
    pub direction: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfaceBins {
    pub bins: [Bin; RING],
    /// This CPU's burst in progress, in the same map value: one lookup per packet.
    pub open: Burst,
}

/// Written by userspace per slot, read per packet. A slot is empty while `ifindex` is 0, and
/// taken but not binning while `bin_ns` is 0.
/// A bin is over the threshold at `packets` or `bytes`; the bin before joins a burst as its
/// leading edge at `edge_packets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstConfig {
    pub netns: u32,
    pub ifindex: u32,
    pub bin_ns: u32,
    pub packets: u32,
    pub bytes: u64,
    pub edge_packets: u32,
    pub _pad: u32,
}

/// A burst that ended on one CPU (`header.cpu`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BurstRecord {
    pub header: EventHeader,
    pub burst: Burst,
}

crate::user_pod!(Bin, Burst, IfaceBins, BurstConfig, BurstRecord);
