//! Microbursts (incidents 01, 02): per-interface packet rates in bins of 100 µs to 10 ms,
//! which 15-second scrapes cannot see. The kernel bins every received packet per CPU; this
//! reads the finished bins on a timer, merges the CPUs, and hands them to the detector.

pub mod command;
pub mod detect;
pub mod histogram;

use std::{collections::BTreeMap, ffi::CStr, path::PathBuf};

use aya::maps::{Array, MapData, PerCpuArray};
use netprobe_common::bursts::{BurstConfig, IfaceBins, RING, SLOTS};

use crate::{agent::Agent, btf::ArgKind, clock::Clock, error::Error, hooks::Tracepoint, nsenter};

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

/// What is binned: the `--pod`'s netns, or netprobe's own (the node's, holding each pod's
/// host-side veth), and its interfaces by index.
pub struct Scope {
    pub netns: u32,
    pub label: String,
    pub interfaces: BTreeMap<u32, String>,
}

impl Scope {
    pub fn of(agent: &Agent) -> Result<Self, Error> {
        let own = PathBuf::from("/proc/self/ns/net");
        let (netns, path, label) = match &agent.pod_filter {
            Some((name, netns)) => {
                let pod = agent.names.pods.pods().find(|p| p.netns == *netns);
                (*netns, pod.map_or(own, |p| p.path.clone()), format!("pod {name}"))
            }
            None => {
                let link = std::fs::read_link(&own)?;
                let inode = link
                    .to_string_lossy()
                    .trim_start_matches("net:[")
                    .trim_end_matches(']')
                    .parse();
                let inode = inode
                    .map_err(|_| Error::Layout(format!("{}: not a netns link", own.display())))?;
                (inode, own, "this node's network namespace".to_owned())
            }
        };
        Ok(Self { netns, label, interfaces: interfaces(netns, path) })
    }

    /// Every interface but loopback.
    pub fn watched(&self) -> Vec<u32> {
        self.interfaces.iter().filter(|(_, n)| n.as_str() != "lo").map(|(i, _)| *i).collect()
    }
}

/// Interface index to name, inside the netns at `path`.
fn interfaces(netns: u32, path: PathBuf) -> BTreeMap<u32, String> {
    let found = nsenter::each(&[(netns, path)], |_| {
        let mut out = BTreeMap::new();
        let list = unsafe { libc::if_nameindex() };
        if list.is_null() {
            return out;
        }
        let mut i = 0;
        loop {
            let entry = unsafe { *list.add(i) };
            if entry.if_index == 0 {
                break;
            }
            let name = unsafe { CStr::from_ptr(entry.if_name) }.to_string_lossy().into_owned();
            out.insert(entry.if_index, name);
            i += 1;
        }
        unsafe { libc::if_freenameindex(list) };
        out
    });
    found.into_iter().next().map(|(_, m)| m).unwrap_or_default()
}

/// A burst as a live event for watch and report (docs/json.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BurstEvent {
    pub time: String,
    pub start_ns: u64,
    pub pod: String,
    pub netns: u32,
    pub interface: String,
    pub duration_us: f64,
    pub packets: u64,
    pub bytes: u64,
    pub peak_pps: f64,
    pub cpu: u32,
}

/// Bursts found as the bins come in, for watch and report.
pub struct Live {
    pub reader: BinReader,
    pub detector: detect::Detector,
    pub scope: Scope,
}
