//! `netprobe report`: what is wrong, for which pod, and how to fix it (findings), then exact
//! counts per pod for every family, over a window collected live or read from a recording.

mod build;
pub mod findings;
pub mod html;
pub mod section;
pub mod text;
pub mod timeline;

pub use build::{BuildError, Builder};
pub use timeline::TimelineView;

use crate::{
    cli::ReportFormat,
    families::Sections,
    family::{Family, FamilyStatus, FamilyUnavailable},
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
    /// Each family's rows (`families::sections!`), in the order they are listed there.
    #[serde(flatten)]
    pub sections: Sections,
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

/// A pod's own kernel counters, growth over the report (SNMP, TcpExt, nf_conntrack stats).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PodKernel {
    pub pod: String,
    pub netns: u32,
    pub tcp_out_segs: u64,
    pub tcp_retrans_segs: u64,
    pub tcp_out_rsts: u64,
    pub tcp_estab_resets: u64,
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
    /// Whether `family` ran.
    pub fn ran(&self, family: Family) -> bool {
        self.families.iter().any(|f| f.family == family)
    }

    /// The report as `format` prints it.
    pub fn render(&self, format: ReportFormat) -> anyhow::Result<String> {
        Ok(match format {
            ReportFormat::Text => text::text(self),
            ReportFormat::Json => serde_json::to_string_pretty(self)? + "\n",
            ReportFormat::Html => html::html(self),
        })
    }
}
