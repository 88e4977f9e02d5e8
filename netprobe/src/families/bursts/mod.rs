//! Microbursts (incidents 01, 02): per-interface packet rates in bins of 100 µs to 10 ms,
//! which 15-second scrapes cannot see. The kernel bins every packet received and sent per
//! CPU and sends one record per CPU when a run of bins over the threshold ends; this merges
//! those records, sets the thresholds, and reads the finished bins on a timer for the
//! histograms and the exact sums.

pub mod findings;
pub mod histogram;
pub mod live;
pub mod merge;
pub mod metrics;
pub mod report;
pub mod scope;
pub mod threshold;

use aya::maps::{Array, MapData, PerCpuArray};
use netprobe_common::bursts::{self as wire, BurstConfig, IfaceBins, PROBES, RING, RX, SLOTS, TX};

use crate::{btf::ArgKind, clock::Clock, error::Error, hooks::Tracepoint};

pub const TRACEPOINTS: &[&Tracepoint] = &[
    &Tracepoint {
        category: "net",
        name: "netif_receive_skb",
        btf_args: &[ArgKind::StructPtr("sk_buff")],
        fields: &["skbaddr"],
        programs: [Some("bursts_rx_tp_btf"), Some("bursts_rx_raw_tp"), Some("bursts_rx_tp")],
        slot: |l| &mut l.netif_receive_skb,
    },
    &Tracepoint {
        category: "net",
        name: "net_dev_start_xmit",
        btf_args: &[ArgKind::StructPtr("sk_buff")],
        fields: &["skbaddr"],
        programs: [Some("bursts_tx_tp_btf"), Some("bursts_tx_raw_tp"), Some("bursts_tx_tp")],
        slot: |l| &mut l.net_dev_start_xmit,
    },
];

pub const BINS_MAP: &str = "BURST_BINS";
pub const CONFIG_MAP: &str = "BURST_CONFIG";

/// Which way packets go through an interface, as the interface sees it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received (net:netif_receive_skb).
    Rx,
    /// Sent (net:net_dev_start_xmit).
    Tx,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Rx, Direction::Tx];

    fn wire(self) -> u32 {
        match self {
            Direction::Rx => RX,
            Direction::Tx => TX,
        }
    }

    fn from_wire(d: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.wire() == d)
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Rx => "rx",
            Direction::Tx => "tx",
        }
    }
}

/// An interface (by ifindex) in one direction.
pub type Key = (Direction, u32);

/// The first of `key`'s probe slots not in `taken` (the kernel's order, `config_of` in
/// netprobe-ebpf's bursts.rs).
fn free_slot(key: Key, taken: &[u32]) -> Option<u32> {
    (0..PROBES)
        .map(|probe| key.0.wire() * SLOTS + key.1.wrapping_add(probe) % SLOTS)
        .find(|slot| !taken.contains(slot))
}

/// One finished bin of one interface and direction, all CPUs together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinTotal {
    pub key: Key,
    /// Bin number: start time / width, on CLOCK_MONOTONIC.
    pub id: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// What one read of the map found.
#[derive(Default)]
pub struct Reading {
    pub bins: Vec<BinTotal>,
    /// Bursts the kernel holds open, per CPU.
    pub open: Vec<merge::Burst>,
}

pub struct BinReader {
    bins: PerCpuArray<MapData, IfaceBins>,
    config: Array<MapData, BurstConfig>,
    netns: u32,
    bin_ns: u64,
    watched: Vec<Key>,
    /// The map slot of each watched interface.
    slots: Vec<u32>,
    written: Vec<Option<threshold::Limits>>,
    /// The next bin to read.
    next: u64,
    /// Bins the reader fell too far behind to read (more than RING behind).
    pub missed_bins: u64,
    /// Interfaces not binned: every slot they may take (`PROBES` from `ifindex % SLOTS`)
    /// went to earlier ones.
    pub skipped: Vec<Key>,
}

impl BinReader {
    /// Bins `netns`'s interfaces `watched` at `bin_ns` from the first `set_limits` of each.
    pub fn new(
        bins: PerCpuArray<MapData, IfaceBins>,
        config: Array<MapData, BurstConfig>,
        netns: u32,
        bin_ns: u64,
        watched: Vec<Key>,
    ) -> Result<Self, Error> {
        let next = Clock::monotonic_now() / bin_ns + 1;
        let mut reader = Self {
            bins,
            config,
            netns,
            bin_ns,
            watched: Vec::new(),
            slots: Vec::new(),
            written: Vec::new(),
            next,
            missed_bins: 0,
            skipped: Vec::new(),
        };
        reader.watch(watched)?;
        Ok(reader)
    }

    pub fn bin_ns(&self) -> u64 {
        self.bin_ns
    }

    /// Also bins `keys` not binned yet (interfaces that appeared), from their first
    /// `set_limits`; one without a free slot joins `skipped`.
    pub fn watch(&mut self, keys: impl IntoIterator<Item = Key>) -> Result<(), Error> {
        for key in keys {
            if self.watched.contains(&key) || self.skipped.contains(&key) {
                continue;
            }
            let Some(slot) = free_slot(key, &self.slots) else {
                self.skipped.push(key);
                continue;
            };
            // Taken at once, not binning until its limits: the kernel's probe for a later
            // interface stops at an empty slot.
            let taken = BurstConfig { netns: self.netns, ifindex: key.1, ..BurstConfig::default() };
            self.config.set(slot, taken, 0)?;
            self.watched.push(key);
            self.slots.push(slot);
            self.written.push(None);
        }
        Ok(())
    }

    pub fn watched(&self) -> &[Key] {
        &self.watched
    }

    /// Every bin before this one has been read.
    pub fn finished(&self) -> u64 {
        self.next
    }

    /// Hands the kernel new limits for the `i`th watched interface, if they changed.
    pub fn set_limits(&mut self, i: usize, limits: threshold::Limits) -> Result<(), Error> {
        if self.written[i] == Some(limits) {
            return Ok(());
        }
        let (_, ifindex) = self.watched[i];
        let config = BurstConfig {
            netns: self.netns,
            ifindex,
            bin_ns: self.bin_ns as u32,
            packets: limits.packets,
            bytes: limits.bytes,
            edge_packets: limits.edge_packets,
            _pad: 0,
        };
        self.config.set(self.slots[i], config, 0)?;
        self.written[i] = Some(limits);
        Ok(())
    }

    /// Every bin finished since the last call, for every watched interface, zeros included,
    /// and the bursts still open. The last read of a run (`to_end`) also takes the bins of
    /// this moment: it waits until they are finished (two bins, 20 ms at most).
    pub fn read(&mut self, to_end: bool) -> Result<Reading, Error> {
        if to_end {
            let now = Clock::monotonic_now();
            let finished = (now / self.bin_ns + 2) * self.bin_ns;
            std::thread::sleep(std::time::Duration::from_nanos(finished - now));
        }
        let now = Clock::monotonic_now() / self.bin_ns;
        // The current bin may still be written, and the one before by a CPU that is late.
        let last = now.saturating_sub(2);
        if last + 1 >= self.next + RING as u64 {
            let from = last + 1 - RING as u64;
            self.missed_bins += from - self.next;
            self.next = from;
        }
        let mut out = Reading::default();
        for (&key, slot) in self.watched.iter().zip(&self.slots) {
            let per_cpu = self.bins.get(slot, 0)?;
            for id in self.next..=last {
                let mut total = BinTotal { key, id, packets: 0, bytes: 0 };
                for bins in per_cpu.iter() {
                    let b = bins.bins[id as usize % RING];
                    if b.id == id as u32 {
                        total.packets += u64::from(b.packets);
                        total.bytes += b.bytes;
                    }
                }
                out.bins.push(total);
            }
            let open = per_cpu.iter().enumerate().filter(|(_, b)| b.open.bins > 0);
            out.open.extend(open.filter_map(|(cpu, b)| burst_of(&b.open, cpu as u32, now)));
        }
        self.next = self.next.max(last + 1);
        Ok(out)
    }
}

/// A kernel burst with full bin numbers: its truncated first bin is the latest such number
/// at or before bin `now`.
fn burst_of(b: &wire::Burst, cpu: u32, now: u64) -> Option<merge::Burst> {
    let direction = Direction::from_wire(b.direction)?;
    let first_bin = now.checked_sub(u64::from((now as u32).wrapping_sub(b.first_bin)))?;
    Some(merge::Burst {
        key: (direction, b.ifindex),
        first_bin,
        last_bin: first_bin + u64::from(b.bins.max(1)) - 1,
        packets: b.packets,
        bytes: b.bytes,
        peak_packets: u64::from(b.peak_packets),
        cpu,
    })
}

/// A burst as a live event for watch and report (docs/json.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BurstEvent {
    pub time: String,
    pub start_ns: u64,
    pub pod: String,
    pub netns: u32,
    pub interface: String,
    pub direction: Direction,
    pub duration_us: f64,
    pub packets: u64,
    pub bytes: u64,
    pub peak_pps: f64,
    pub cpu: u32,
}

impl crate::event::Sample for BurstEvent {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: Some(self.cpu),
            pod: &self.pod,
            what: "BURST",
            flow: format!("{} {} pkts in {:.0} us", self.interface, self.packets, self.duration_us),
            tail: format!("peak {:.0} pps", self.peak_pps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_sharing_a_remainder_take_the_next_free_slots() {
        let mut taken = Vec::new();
        for ifindex in [2, 2 + SLOTS, 3, 2 + 2 * SLOTS] {
            taken.push(free_slot((Direction::Rx, ifindex), &taken).unwrap());
        }
        assert_eq!(taken, [2, 3, 4, 5]);
        // Past its PROBES slots an interface is skipped; the other direction has its own.
        assert_eq!(free_slot((Direction::Rx, 2 + 3 * SLOTS), &taken), None);
        assert_eq!(free_slot((Direction::Tx, 2), &taken), Some(SLOTS + 2));
        // The last slot probes on from the first.
        assert_eq!(free_slot((Direction::Rx, SLOTS - 1), &[SLOTS - 1]), Some(0));
    }

    #[test]
    fn truncated_bins_unwrap_near_now() {
        let w =
            wire::Burst { first_bin: 5, bins: 3, direction: TX, ifindex: 4, ..Default::default() };
        let b = burst_of(&w, 1, (1 << 32) + 7).unwrap();
        assert_eq!((b.first_bin, b.last_bin), ((1 << 32) + 5, (1 << 32) + 7));
        let w = wire::Burst { first_bin: u32::MAX, bins: 1, ..Default::default() };
        assert_eq!(burst_of(&w, 0, (1 << 32) + 1).unwrap().first_bin, (1 << 32) - 1);
        assert!(burst_of(&wire::Burst { direction: 9, ..w }, 0, 1 << 32).is_none());
    }
}
