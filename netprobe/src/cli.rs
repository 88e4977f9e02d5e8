//! Command-line interface. Doc comments here are the `--help` text.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::duration;

/// netprobe: why packets are dropped on this node, per pod, straight from the kernel.
///
/// netprobe hooks the kernel's drop tracepoint with eBPF, keeps exact counts per network
/// namespace and drop reason in kernel maps, and names the pod, the reason and the kernel
/// function that dropped each packet. Reason names and struct layouts are read from the
/// running kernel's BTF, so output matches the kernel you are on.
#[derive(Debug, Parser)]
#[command(name = "netprobe", version, propagate_version = true)]
#[command(after_help = "\
Examples:
  netprobe doctor                          what this kernel allows, and which hooks are used
  netprobe watch --pod checkout-7d9f       live drops of one pod
  netprobe watch --format json | jq .      drops as JSON Lines, for scripts
  netprobe report --duration 30s           30 s of exact drop counts by pod and reason

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

    /// Stream packet drops live, one per line, until Ctrl-C or --duration.
    ///
    /// Each line: time, CPU, pod, drop reason, protocol and addresses, and the kernel
    /// function that dropped the packet. Drops are sampled through a ring buffer; if it
    /// overflows the lost samples are reported, while exact counts stay exact (see `report`).
    Watch(WatchArgs),

    /// Count drops for --duration, then summarise them by pod, reason and kernel location.
    ///
    /// Counts come from per-CPU kernel maps and are exact; kernel locations come from samples.
    Report(ReportArgs),
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned, human-readable text.
    Text,
    /// JSON (JSON Lines for watch); fields are documented in docs/json.md and kept stable.
    Json,
}
