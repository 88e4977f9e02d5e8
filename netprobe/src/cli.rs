//! Command-line interface. Doc comments here are the `--help` text.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    agent::BurstsConfig,
    duration,
    families::{
        bursts::{threshold::Threshold, Direction},
        linklocal,
        softnet::on_squeeze::RunHooks,
    },
    family::Family,
    pods::{selection::Selection, selector::LabelSelector},
    tiers::Tier,
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
  netprobe report --duration 30s           what is wrong (findings), then exact counts by pod
  netprobe report --duration 1m --format html -o incident.html   a report to attach to a ticket
  netprobe record -o incident.np --duration 5m   save everything; read it anywhere later with
  netprobe report --from incident.np                the same findings as live
  netprobe bursts --pod web-1 --bin 500us  microbursts on a pod's interfaces

Pods are network namespaces: named ones (ip netns, CNI) by name, the host's as `host`,
others by the process living in them (`nginx/1234`) or as `netns:<inode>`.
Needs root, or CAP_BPF and CAP_PERFMON.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// The container runtime's CRI socket, which names Kubernetes pods. Default: the first
    /// that exists of /run/containerd/containerd.sock, /run/k3s/containerd/containerd.sock
    /// and /var/run/crio/crio.sock; without one, pods are named by their network namespaces.
    #[arg(long, global = true, value_name = "PATH")]
    pub cri_socket: Option<PathBuf>,
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

    /// What is wrong, for which pod, and how to fix it; then exact counts per pod and family.
    ///
    /// Collects for --duration (or reads a recording with --from), then prints findings:
    /// each with a stable id (docs/findings.md), the pods affected, a severity, the time
    /// window, netprobe's counts next to the kernel counters that confirm them, and the knob
    /// that fixes it. Then one table per family. Counts come from per-CPU kernel maps and are
    /// exact; kernel locations, flows and the handshake-timeout pattern come from samples.
    Report(ReportArgs),

    /// Save what a report needs to a file, to read later or elsewhere with `report --from`.
    ///
    /// The file holds exact counter snapshots once a second, the kernel's own counters, the
    /// sampled events, the pods and the kernel's drop-reason names: `report --from` on another
    /// machine gives the same findings. Recording stops at --max-size, and says so.
    Record(RecordArgs),

    /// Run as the node's always-on agent: Prometheus metrics, findings and reports over HTTP.
    ///
    /// Attaches the default families once and keeps them attached until SIGTERM. Keeps the
    /// per-second frames `record` writes for --retain (at most --max-memory, oldest first out),
    /// so any window within it can be reported on later: "what was wrong at 3 a.m.?". Serves
    /// /metrics (exact per-pod counters, active findings, its own health), /healthz, /readyz,
    /// and /api/v1/{findings,report,record}?window=10m&pod=NAME (docs/agent.md). Read-only.
    Agent(AgentArgs),

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
pub struct AgentArgs {
    /// Where to serve HTTP. The default is loopback only; a DaemonSet sets the pod's address
    /// (e.g. 0.0.0.0:9990) so Prometheus can scrape it.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9990")]
    pub listen: std::net::SocketAddr,

    /// How far back reports and findings can look, e.g. 30m, 2h.
    #[arg(long, value_name = "D", default_value = "30m", value_parser = duration::parse)]
    pub retain: Duration,

    /// Memory the retained frames may take, e.g. 256MB; the oldest go first past it (the
    /// retained window then shrinks, and `netprobe_retained_seconds` says how far back it is).
    #[arg(long, value_name = "SIZE", default_value = "256MB", value_parser = parse_size)]
    pub max_memory: u64,

    /// How long a deleted pod's counts stay: in the kernel's maps, and as series in /metrics
    /// (so the last scrape sees its final counts and alerts can resolve).
    #[arg(long, value_name = "D", default_value = "60s", value_parser = duration::parse)]
    pub pod_grace: Duration,

    /// Require `Authorization: Bearer <token>` on /api/v1/*, with the token read from this
    /// file's first line. /metrics, /healthz and /readyz stay open.
    #[arg(long, value_name = "FILE")]
    pub api_token_file: Option<PathBuf>,

    /// Which hook families to keep attached, comma-separated. Default: all but bursts and
    /// linklocal.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY,...")]
    pub events: Vec<Family>,

    /// Run every family at this hook tier only (see `netprobe doctor`).
    #[arg(long, value_enum, value_name = "TIER")]
    pub tier: Option<Tier>,

    #[command(flatten)]
    pub linklocal: LinkLocalArgs,
}

/// The linklocal family's options.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkLocalArgs {
    /// With the linklocal family: also count DNS (port 53) to this cluster DNS service IP,
    /// e.g. kube-dns's ClusterIP; repeatable, at most 16. Pods on the host network are
    /// counted by the address they really send to, after kube-proxy's DNAT.
    #[arg(long = "dns-ip", value_name = "IP")]
    pub dns_ips: Vec<std::net::IpAddr>,

    /// With the linklocal family: packets per second the node may send to and receive from
    /// link-local services (the per-ENI limit); its busiest second at 80% of this is a
    /// finding.
    #[arg(long, value_name = "PPS", default_value_t = linklocal::PPS_LIMIT, value_parser = clap::value_parser!(u32).range(1..))]
    pub linklocal_pps_limit: u32,
}

impl LinkLocalArgs {
    pub fn settings(&self) -> linklocal::Settings {
        linklocal::Settings { dns_ips: self.dns_ips.clone(), pps_limit: self.linklocal_pps_limit }
    }
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

    /// How long the rate may stay below --threshold inside a burst without ending it: a sender
    /// that stalls for a millisecond has sent one burst, not several. 0 ends a burst at its
    /// first quiet bin.
    #[arg(long, value_name = "D", default_value = "5ms", value_parser = duration::parse_or_zero)]
    pub merge_gap: Duration,

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

/// Which pods to look at; the options combine (all must match).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SelectArgs {
    /// Only this pod: `namespace/name`, a pod name unique on the node, a network namespace
    /// name, `host`, `comm/pid` or `netns:<inode>`. Unknown names list the known pods.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,

    /// Only pods in this Kubernetes namespace.
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Only pods whose labels match, as kubectl takes it: `app=web,tier!=db`,
    /// `env in (prod,stage)`, `env notin (dev)`, `canary` (exists), `!canary`. Pods that start
    /// later and match are included.
    #[arg(short = 'l', long, value_name = "SELECTOR", value_parser = parse_selector)]
    pub selector: Option<LabelSelector>,
}

impl SelectArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            pod: self.pod.clone(),
            namespace: self.namespace.clone(),
            labels: self.selector.clone(),
        }
    }
}

fn parse_selector(s: &str) -> Result<LabelSelector, String> {
    s.parse()
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Samples are filtered in the kernel to the selected pods.
    #[command(flatten)]
    pub select: SelectArgs,

    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Stop after this long, e.g. 500ms, 10s, 2m. Default: run until Ctrl-C.
    #[arg(long, value_name = "D", value_parser = duration::parse)]
    pub duration: Option<Duration>,

    /// Which hook families to stream, comma-separated. Default: all but bursts and linklocal.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY,...")]
    pub events: Vec<Family>,

    /// Run every family at this hook tier only, instead of the best one that works here
    /// (see `netprobe doctor`); a family without a program at that tier is an error.
    #[arg(long, value_enum, value_name = "TIER")]
    pub tier: Option<Tier>,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// How long to count, e.g. 10s, 2m. Ctrl-C ends early and still prints the report.
    #[arg(long, value_name = "D", value_parser = duration::parse, required_unless_present_any = ["from", "agent"])]
    pub duration: Option<Duration>,

    /// Read a recording (`netprobe record`) instead of the kernel.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["duration", "events", "record", "tier", "agent"])]
    pub from: Option<PathBuf>,

    /// Ask a running `netprobe agent` (e.g. http://node-1:9990) about the last --window
    /// instead of attaching here.
    #[arg(long, value_name = "URL", conflicts_with_all = ["duration", "events", "record", "tier"])]
    pub agent: Option<String>,

    /// With --agent: how far back, e.g. 10m (at most the agent's --retain).
    #[arg(long, value_name = "D", requires = "agent", default_value = "5m", value_parser = duration::parse)]
    pub window: Duration,

    /// With --agent: the bearer token the agent requires, read from this file.
    #[arg(long, value_name = "FILE", requires = "agent")]
    pub api_token_file: Option<PathBuf>,

    /// With --from or --agent, only --pod applies.
    #[command(flatten)]
    pub select: SelectArgs,

    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,

    /// Write the report here instead of standard output (html needs it).
    #[arg(short, long, value_name = "FILE", required_if_eq("format", "html"))]
    pub output: Option<PathBuf>,

    /// Which hook families to count, comma-separated. Default: all but bursts and linklocal.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY,...")]
    pub events: Vec<Family>,

    /// Run every family at this hook tier only, instead of the best one that works here
    /// (see `netprobe doctor`); a family without a program at that tier is an error.
    #[arg(long, value_enum, value_name = "TIER")]
    pub tier: Option<Tier>,

    /// Also save what this report was made from, as `netprobe record` would.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Size cap of the --record file, e.g. 64MB, 1GB.
    #[arg(long, value_name = "SIZE", default_value = MAX_RECORDING, value_parser = parse_size)]
    pub max_size: u64,

    #[command(flatten)]
    pub linklocal: LinkLocalArgs,

    /// Resets of open connections quiet at least this long count as idle-timeout resets
    /// (a NAT or load balancer forgetting idle flows; AWS forgets them after 350 s).
    #[arg(long, value_name = "D", default_value = "300s", value_parser = duration::parse)]
    pub idle_reset_min: Duration,
}

#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// The recording to write (overwritten if it exists).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// How long to record, e.g. 30s, 10m. Ctrl-C ends early and keeps the recording.
    #[arg(long, value_name = "D", value_parser = duration::parse)]
    pub duration: Duration,

    #[command(flatten)]
    pub select: SelectArgs,

    /// Which hook families to record, comma-separated. Default: all but bursts and linklocal.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILY,...")]
    pub events: Vec<Family>,

    /// Run every family at this hook tier only, instead of the best one that works here
    /// (see `netprobe doctor`); a family without a program at that tier is an error.
    #[arg(long, value_enum, value_name = "TIER")]
    pub tier: Option<Tier>,

    /// Stop recording at this size, e.g. 64MB, 1GB; netprobe says when it does.
    #[arg(long, value_name = "SIZE", default_value = MAX_RECORDING, value_parser = parse_size)]
    pub max_size: u64,

    #[command(flatten)]
    pub linklocal: LinkLocalArgs,
}

/// Default cap of a recording.
const MAX_RECORDING: &str = "256MB";

/// `64MB`, `1GB`, `500KB` or a number of bytes (decimal units).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits.parse().map_err(|_| format!("`{s}`: expected a size such as 64MB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KB" | "K" => 1_000,
        "MB" | "M" => 1_000_000,
        "GB" | "G" => 1_000_000_000,
        other => return Err(format!("`{s}`: unknown unit `{other}` (B, KB, MB, GB)")),
    };
    match n.checked_mul(mult) {
        Some(v) if v >= 1_000_000 => Ok(v),
        Some(_) => Err(format!("`{s}`: a recording needs at least 1MB")),
        None => Err(format!("`{s}`: too large")),
    }
}

/// Bins and threshold of bursts in watch and report (`netprobe bursts` sets its own).
pub const BURST_BIN: Duration = Duration::from_millis(1);
pub const BURST_THRESHOLD: Threshold = Threshold::Relative(4.0);
/// Quiet time inside a burst that does not end it: a sender stalled for a millisecond or two
/// has sent one burst.
pub const MERGE_GAP: Duration = Duration::from_millis(5);

/// How watch and report bin bursts: every interface of the scope, both directions.
pub fn bursts_config(histograms: bool) -> BurstsConfig {
    BurstsConfig {
        bin_ns: BURST_BIN.as_nanos() as u64,
        threshold: BURST_THRESHOLD,
        interface: None,
        directions: Direction::ALL.to_vec(),
        histograms,
        merge_gap_ns: MERGE_GAP.as_nanos() as u64,
    }
}

/// The families asked for, or the default ones.
pub fn families(asked: &[Family]) -> Vec<Family> {
    if asked.is_empty() {
        Family::DEFAULT.to_vec()
    } else {
        asked.to_vec()
    }
}

/// Named with --events, softnet counts every NET_RX run; among the default families (what
/// an always-on agent runs) its per-run hooks attach only while CPUs squeeze.
pub fn softnet_runs(asked: &[Family]) -> RunHooks {
    if asked.contains(&Family::Softnet) {
        RunHooks::Always
    } else {
        RunHooks::OnSqueeze
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Findings first, then aligned tables.
    Text,
    /// The same content as JSON, documented in docs/json.md and kept stable.
    Json,
    /// One self-contained file (needs -o) with the findings and charts, for an incident ticket.
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned, human-readable text.
    Text,
    /// JSON (JSON Lines for watch); fields are documented in docs/json.md and kept stable.
    Json,
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MB"), Ok(64_000_000));
        assert_eq!(parse_size("1gb"), Ok(1_000_000_000));
        assert_eq!(parse_size("2000000"), Ok(2_000_000));
        assert!(parse_size("10KB").unwrap_err().contains("at least 1MB"));
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_size("MB").is_err());
    }
}
