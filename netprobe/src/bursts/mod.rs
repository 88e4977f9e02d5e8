//! Microbursts (incidents 01, 02): per-interface packet rates in bins of 100 µs to 10 ms,
//! which 15-second scrapes cannot see. The kernel bins every received packet per CPU; this
//! reads the finished bins on a timer, merges the CPUs, and hands them to the detector.

pub mod command;
pub mod detect;
pub mod histogram;

use aya::maps::{Array, MapData, PerCpuArray};
use netprobe_common::bursts::{BurstConfig, IfaceBins, RING, SLOTS};

use crate::{btf::ArgKind, clock::Clock, error::Error, hooks::Tracepoint};

pub const TRACEPOINTS: &[&Tracepoint] = &[&Tracepoint {
    category: "net",
    name: "netif_receive_skb",
    btf_args: &[ArgKind::StructPtr("sk_buff")],
    fields: &["skbaddr"],
    programs: [Some("bursts_rx_tp_btf"), Some("bursts_rx_raw_tp"), Some("bursts_rx_tp")],
    slot: |l| &mut l.netif_receive_skb,
}];

pub const BINS_MAP: &str = "BURST_BINS";
pub const CONFIG_MAP: &str = "BURST_CONFIG";

/// One finished bin of one interface, all CPUs together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinTotal {
    pub ifindex: u32,
    /// Bin number: start time / width, on CLOCK_MONOTONIC.
    pub id: u64,
    pub packets: u64,
    pub bytes: u64,
    /// The CPU that received most of it.
    pub cpu: u32,
}

pub struct BinReader {
    bins: PerCpuArray<MapData, IfaceBins>,
    bin_ns: u64,
    ifindexes: Vec<u32>,
    /// The next bin to read.
    next: u64,
    /// Bins the reader fell too far behind to read (more than RING behind).
    pub missed_bins: u64,
}

impl BinReader {
    /// Starts binning `netns`'s interfaces `ifindexes` at `bin_ns`.
    pub fn start(
        bins: PerCpuArray<MapData, IfaceBins>,
        mut config: Array<MapData, BurstConfig>,
        netns: u32,
        bin_ns: u64,
        ifindexes: Vec<u32>,
    ) -> Result<Self, Error> {
        config.set(0, BurstConfig { netns, bin_ns: bin_ns as u32 }, 0)?;
        let next = Clock::monotonic_now() / bin_ns + 1;
        Ok(Self { bins, bin_ns, ifindexes, next, missed_bins: 0 })
    }

    pub fn bin_ns(&self) -> u64 {
        self.bin_ns
    }

    /// Every bin finished since the last call, for every watched interface, zeros included.
    pub fn read(&mut self) -> Result<Vec<BinTotal>, Error> {
        // The current bin may still be written, and the one before by a CPU that is late.
        let last = (Clock::monotonic_now() / self.bin_ns).saturating_sub(2);
        if self.next > last {
            return Ok(Vec::new());
        }
        if last - self.next >= RING as u64 {
            let from = last + 1 - RING as u64;
            self.missed_bins += from - self.next;
            self.next = from;
        }
        let mut out = Vec::new();
        for &ifindex in &self.ifindexes {
            let per_cpu = self.bins.get(&(ifindex % SLOTS), 0)?;
            for id in self.next..=last {
                let mut total = BinTotal { ifindex, id, packets: 0, bytes: 0, cpu: 0 };
                let mut most = 0;
                for (cpu, bins) in per_cpu.iter().enumerate() {
                    let b = bins.bins[id as usize % RING];
                    if b.id == id as u32 && b.packets > 0 {
                        total.packets += u64::from(b.packets);
                        total.bytes += b.bytes;
                        if b.packets > most {
                            (most, total.cpu) = (b.packets, cpu as u32);
                        }
                    }
                }
                out.push(total);
            }
        }
        self.next = last + 1;
        Ok(out)
    }
}
