//! `netprobe report`: what is wrong, for which pod, and how to fix it (findings), then exact
//! counts per pod for every family, over a window collected live or read from a recording.

mod build;
pub mod findings;
mod html;
mod text;
pub mod timeline;

use std::net::IpAddr;

pub use build::{BuildError, Builder};
pub use timeline::TimelineView;

use crate::{
    cli::ReportFormat,
    families::{
        bursts::{histogram::PodRates, BurstEvent},
        ports::PortOp,
        softnet::{CpuSoftnet, Knobs},
    },
    family::{FamilyStatus, FamilyUnavailable},
    health::Health,
    pods::PodMeta,
};

pub const REPORT_VERSION: u32 = 2;

/// The report (docs/json.md, `netprobe report`).
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub version: u32,
    /// The window: first and last counter snapshot.
    pub from: String,
    pub to: String,
    pub duration_s: f64,
    pub host: String,
    /// `uname -r`.
    pub kernel_release: String,
    /// False when collection stopped early (a recording's size cap); `note` says why.
    pub complete: bool,
    pub note: Option<String>,
    /// The pod the report was limited to, if any.
    pub pod: Option<String>,
    pub families: Vec<FamilyStatus>,
    /// Families asked for that could not run on this kernel, with why.
    pub unavailable: Vec<FamilyUnavailable>,
    /// What is wrong, most important first (docs/findings.md).
    pub findings: Vec<findings::Finding>,
    /// Exact, from kernel counters; largest first.
    pub drops: Vec<DropCount>,
    /// Exact, from kernel counters keyed by location; largest first.
    pub locations: Vec<LocationCount>,
    /// Exact, from kernel counters; retransmits in segments.
    pub tcp: Vec<TcpCount>,
    /// From samples: destinations whose SYNs were retransmitted repeatedly.
    pub handshake_timeouts: Vec<HandshakeTimeout>,
    /// From samples: where retransmitted data segments went.
    pub retransmit_paths: Vec<RetransmitPath>,
    /// Exact, from each pod's own ListenOverflows and ListenDrops.
    pub listen_drops: Vec<ListenDropCount>,
    /// Per listening socket, from its own drop counter; largest first.
    pub listen_overflows: Vec<ListenOverflowCount>,
    /// Per pod with conntrack trouble or a nearly full table.
    pub conntrack: Vec<ConntrackRow>,
    /// Present when the softnet family ran.
    pub softnet: Option<SoftnetReport>,
    /// When the bursts family ran: how many were found, and the largest.
    pub burst_count: u64,
    pub bursts: Vec<BurstEvent>,
    /// With bursts: the distribution of per-bin packet rates, per pod and direction.
    pub burst_rates: Vec<PodRates>,
    /// Exact, from kernel counters.
    pub ports: Vec<PortCount>,
    /// From samples: who failed, towards where, with the pod's context.
    pub port_errors: Vec<PortErrorSite>,
    /// Each pod's own kernel counters that grew over the window: the evidence's other side.
    pub kernel: Vec<PodKernel>,
    /// Per-second growth of the counters, for charts.
    pub timeline: TimelineView,
    pub samples: u64,
    pub health: Health,
    /// Every pod the report names, with what the container runtime says of it.
    pub pods: Vec<PodInfo>,
}

/// A pod of the report (docs/json.md, docs/pods.md).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PodInfo {
    /// As every row names it: `namespace/name` for a Kubernetes pod.
    pub pod: String,
    pub netns: u32,
    #[serde(flatten)]
    pub meta: PodMeta,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DropCount {
    pub pod: String,
    pub netns: u32,
    pub reason: String,
    pub reason_code: Option<u32>,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct LocationCount {
    pub location: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct TcpCount {
    pub pod: String,
    pub netns: u32,
    pub event: String,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct HandshakeTimeout {
    pub pod: String,
    pub netns: u32,
    pub daddr: IpAddr,
    pub dport: u16,
    pub syn_retransmits: u64,
    pub rst_received: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ListenDropCount {
    pub pod: String,
    pub netns: u32,
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ListenOverflowCount {
    pub pod: String,
    pub netns: u32,
    pub addr: IpAddr,
    pub port: u16,
    pub drops: u64,
    /// Accept queue length and limit at the last poll.
    pub queue: u32,
    pub max_queue: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct SoftnetReport {
    /// The sysctls in force when CPUs last squeezed or dropped, else at the end.
    pub knobs: Knobs,
    /// Exact, per CPU, over the report.
    pub cpus: Vec<CpuSoftnet>,
    /// The kernel's softnet_stat per CPU, over the report.
    pub kernel_cpus: Vec<KernelCpu>,
    /// Exact: drops freed where a CPU's backlog was full (the CPU RPS steered to), by pod.
    pub backlog_drops: Vec<DropCount>,
    /// From samples: the biggest squeezed run, in packets and in time.
    pub max_squeezed_packets: u64,
    pub max_squeezed_us: f64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConntrackRow {
    pub pod: String,
    pub netns: u32,
    /// From the netns's own conntrack counters, growth over the report.
    pub table_full_drops: u64,
    pub insert_failed: u64,
    pub early_drop: u64,
    pub invalid: u64,
    /// Drops freed in nf_hook_slow: a hook's verdict (conntrack's, when the table
    /// is full), counted exactly by the drops family.
    pub verdict_drops: u64,
    /// Drops freed in nft_do_chain: an nf_tables rule (policy), counted exactly.
    pub rule_drops: u64,
    /// The fullest the table was seen: entries and limit.
    pub peak_count: u64,
    pub max: u64,
    /// The kernel's rate-limited "table full in netns" lines seen (a signal, not a count).
    pub table_full_messages: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct PortCount {
    pub pod: String,
    pub netns: u32,
    pub op: String,
    pub errno: String,
    pub count: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PortErrorSite {
    pub pod: String,
    pub netns: u32,
    pub comm: String,
    pub op: PortOp,
    pub errno: String,
    /// connect(): the destination; bind(): the address asked for.
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub count: u64,
    /// At the last sample: the range and the socket's own end as the kernel had them at the
    /// error, and the polled TIME_WAIT count with how long after the error it was read.
    pub ip_local_port_range: Option<String>,
    pub bound_addr: Option<IpAddr>,
    pub bound_port: Option<u16>,
    pub time_wait_to_destination: Option<u32>,
    pub time_wait_age_ms: Option<i64>,
}

#[derive(Debug, serde::Serialize)]
pub struct RetransmitPath {
    pub pod: String,
    pub netns: u32,
    pub daddr: IpAddr,
    pub dport: u16,
    /// Retransmitted data segments sampled towards it.
    pub segs: u64,
}

/// A CPU's softnet_stat growth over the report.
#[derive(Debug, serde::Serialize)]
pub struct KernelCpu {
    pub cpu: u32,
    pub time_squeeze: u64,
    /// Packets dropped because this CPU's backlog was full.
    pub dropped: u64,
}

/// A pod's own kernel counters, growth over the report (SNMP, TcpExt, nf_conntrack stats).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PodKernel {
    pub pod: String,
    pub netns: u32,
    pub tcp_out_segs: u64,
    pub tcp_retrans_segs: u64,
    pub tcp_out_rsts: u64,
    pub tcp_syn_retrans: u64,
    pub listen_overflows: u64,
    pub listen_drops: u64,
    pub udp_no_ports: u64,
    /// Ip and Ip6 InReceives + OutRequests.
    pub ip_packets: u64,
    pub conntrack_drop: u64,
    pub conntrack_insert_failed: u64,
    pub conntrack_early_drop: u64,
    pub conntrack_invalid: u64,
}

impl Report {
    /// The report as `format` prints it.
    pub fn render(&self, format: ReportFormat) -> anyhow::Result<String> {
        Ok(match format {
            ReportFormat::Text => text::text(self),
            ReportFormat::Json => serde_json::to_string_pretty(self)? + "\n",
            ReportFormat::Html => html::html(self),
        })
    }
}
