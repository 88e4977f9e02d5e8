//! Command-line interface. Doc comments here are the `--help` text.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    agent::Family,
    bursts::{threshold::Threshold, Direction},
    duration,
};

/// netprobe: why packets are dropped on this node, per pod, straight from the kernel.
///
/// netprobe hooks the kernel with eBPF: packet drops with their reason and kernel location,
/// TCP retransmits and resets, ephemeral-port and bind errors, conntrack trouble, softnet
/// time squeezes, and microbursts. It keeps exact counts per network namespace in kernel maps
/// and names the pod of every event. Reason names, TCP states and struct layouts are read
/// from the running kernel's BTF, so output matches the kernel you are on.
#[derive(Debug, Parser)]
#[command(name = "netprobe", version, propagate_version = true)]
#[command(after_help = "\
Examples:
  netprobe doctor                          what this kernel allows, and which hooks are used
  netprobe watch --pod checkout-7d9f       live drops of one pod
  netprobe watch --events tcp              only TCP retransmits and resets
  netprobe watch --format json | jq .      events as JSON Lines, for scripts
  netprobe report --duration 30s           30 s of exact counts by pod, per family
  netprobe bursts --pod web-1 --bin 500us  microbursts on a pod's interfaces

Pods are network namespaces: named ones (ip netns, CNI) by name, the host's as `host`,
others by the process living in them (`nginx/1234`) or as `netns:<inode>`.
Needs root, or CAP_BPF and CAP_PERFMON.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the kernel, BTF and privileges, and which hook tier each hook family can use.
    ///
    /// Every tier is probed by loading a program into the kernel's verifier, so the answer is
    /// what this kernel really allows, not what its version suggests.
    Doctor,

    /// Stream events live, one per line, until Ctrl-C or --duration.
    ///
    /// Drops: time, CPU, pod, drop reason, protocol and addresses, and the kernel function
    /// that dropped the packet. TCP: retransmits and resets with the flow and socket state.
    /// Events are sampled through a ring buffer; if it overflows the lost samples are
    /// reported, while exact counts stay exact (see `report`).
    Watch(WatchArgs),

    /// Count events for --duration, then summarise them per pod, one section per family.
    ///
    /// Counts come from per-CPU kernel maps and are exact; kernel locations, flows and the
    /// handshake-timeout pattern come from samples.
    Report(ReportArgs),

    /// Packet rates per interface in sub-millisecond bins, and the bursts in them.
    ///
    /// Every packet received and sent on the pod's interfaces (or, without --pod, of this
    /// node's network namespace, which holds each pod's host-side veth, shown with the pod at
    /// its other end) is counted into bins of --bin, per CPU. A run of bins at or above
    /// --threshold on one CPU is a burst, summed up in the kernel; the bursts of several CPUs
    /// that overlap in time are one. After --duration: the distribution of per-bin rates per
    /// interface and per pod, and each burst with the squeezed softirq runs and backlog drops
    /// of the same moments.
    Bursts(BurstsArgs),
}

#[derive(Debug, clap::Args)]
pub struct BurstsArgs {
    /// The pod whose interfaces to watch. Default: this node's network namespace.
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,

    /// Only this interface (in the pod, or on the node).
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,

    /// Bin width, from 100us to 10ms.
    #[arg(long, value_name = "D", default_value = "1ms", value_parser = duration::parse)]
    pub bin: Duration,

    /// When a bin is part of a burst: a packet rate (200kpps), a byte rate (50MB/s), or a
    /// factor of the interface's recent average packet rate (4x, never under 10 packets in a
    /// bin).
    #[arg(long, value_name = "T", default_value = "4x", value_parser = Threshold::parse)]
    pub threshold: Threshold,

    /// Which packets to bin: received (rx), sent (tx), or both.
    #[arg(long, value_enum, default_value_t = Directions::Both)]
    pub direction: Directions,

    /// How long to watch, e.g. 10s, 2m.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = duration::parse)]
    pub duration: Duration,

    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Directions {
    Rx,
    Tx,
    Both,
}

impl Directions {
    pub fn list(self) -> Vec<Direction> {
        match self {
            Directions::Rx => vec![Direction::Rx],
            Directions::Tx => vec![Direction::Tx],
            Directions::Both => Direction::ALL.to_vec(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Only this pod's drops (filtered in the kernel). Unknown names list the known pods.
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,

    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Stop after this long, e.g. 500ms, 10s, 2m. Default: run until Ctrl-C.
    #[arg(long, value_name = "D", value_parser = duration::parse)]
    pub duration: Option<Duration>,

    /// Which hook families to stream, comma-separated. Default: all but bursts.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY,...")]
    pub events: Vec<Family>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// How long to count, e.g. 10s, 2m. Ctrl-C ends early and still prints the report.
    #[arg(long, value_name = "D", value_parser = duration::parse)]
    pub duration: Duration,

    /// Only this pod. Unknown names list the known pods.
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,

    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Which hook families to count, comma-separated. Default: all but bursts.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY,...")]
    pub events: Vec<Family>,
}

/// Bins and threshold of bursts in watch and report (`netprobe bursts` sets its own).
pub const BURST_BIN: Duration = Duration::from_millis(1);
pub const BURST_THRESHOLD: Threshold = Threshold::Relative(4.0);

/// The families asked for, or the default ones.
pub fn families(asked: &[Family]) -> Vec<Family> {
    if asked.is_empty() {
        Family::DEFAULT.to_vec()
    } else {
        asked.to_vec()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned, human-readable text.
    Text,
    /// JSON (JSON Lines for watch); fields are documented in docs/json.md and kept stable.
    Json,
}
