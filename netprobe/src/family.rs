//! The hook families by name, and how each ran: the vocabulary that commands, frames and the
//! report share.

use crate::{
    families::{
        bursts, conntrack, drops, linklocal, ports, softnet, softnet::on_squeeze::RunHooks, tcp,
    },
    hooks::{self, Function, Tracepoint, Variant},
    tiers::{Skipped, Tier},
};

/// The hook families, as `--events` names them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Packet drops with reason and kernel location (skb:kfree_skb), and accept-queue
    /// overflows of listening sockets (sock_diag).
    Drops,
    /// TCP retransmits (data, SYN, SYN-ACK) and resets sent and received.
    Tcp,
    /// connect()/bind() failing with EADDRNOTAVAIL or EADDRINUSE: port exhaustion and
    /// bind conflicts.
    Ports,
    /// Conntrack table full, insert races, early drops and utilisation per pod, and the
    /// kernel's "table full" message.
    Conntrack,
    /// NET_RX softirq runs per CPU, and the runs squeezed on netdev_budget(_usecs).
    Softnet,
    /// Packets received and sent per interface in sub-millisecond bins, and the bursts in
    /// them (`netprobe bursts`). Hooks every packet, so it runs only when asked for.
    Bursts,
    /// Packets of pods' sockets to and from link-local services (VPC DNS resolver, instance
    /// metadata, time sync) and DNS to the cluster DNS IPs, per second, against the per-ENI
    /// limit. Hooks every socket's packets, so it runs only when asked for.
    Linklocal,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Drops,
        Family::Tcp,
        Family::Ports,
        Family::Conntrack,
        Family::Softnet,
        Family::Bursts,
        Family::Linklocal,
    ];
    /// What watch and report attach unless --events says otherwise.
    pub const DEFAULT: [Family; 5] =
        [Family::Drops, Family::Tcp, Family::Ports, Family::Conntrack, Family::Softnet];

    pub fn name(self) -> &'static str {
        match self {
            Family::Drops => "drops",
            Family::Tcp => "tcp",
            Family::Ports => "ports",
            Family::Conntrack => "conntrack",
            Family::Softnet => "softnet",
            Family::Bursts => "bursts",
            Family::Linklocal => "linklocal",
        }
    }

    /// The ways this family can run, best tier first. A family with function-tier programs
    /// lists those variants ahead of its tracepoint tiers.
    pub fn variants(self) -> Vec<Variant> {
        if self == Family::Linklocal {
            return linklocal::variants();
        }
        let functions = match self {
            Family::Softnet => softnet::function_variants(),
            Family::Ports => ports::function_variants(),
            Family::Tcp => tcp::function_variants(),
            Family::Conntrack => conntrack::function_variants(),
            _ => Vec::new(),
        };
        functions.into_iter().chain(hooks::tracepoint_variants(self.tracepoints())).collect()
    }

    /// Where this family's programs attach at `tier`, if it has that tier.
    pub fn points(self, tier: Tier) -> Option<Vec<hooks::Point>> {
        self.variants().iter().find(|v| v.tier == tier).map(Variant::points)
    }

    /// The kernel functions whose argument offsets the layout needs.
    pub fn functions(self) -> &'static [&'static Function] {
        match self {
            Family::Ports => ports::FUNCTIONS,
            Family::Tcp => tcp::FUNCTIONS,
            Family::Conntrack => conntrack::FUNCTIONS,
            _ => &[],
        }
    }

    /// The tracepoints whose argument offsets the layout needs.
    pub fn tracepoints(self) -> &'static [&'static Tracepoint] {
        match self {
            Family::Drops => drops::TRACEPOINTS,
            Family::Tcp => tcp::TRACEPOINTS,
            Family::Ports => ports::TRACEPOINTS,
            Family::Conntrack => conntrack::TRACEPOINTS,
            Family::Softnet => softnet::TRACEPOINTS,
            Family::Bursts => bursts::TRACEPOINTS,
            Family::Linklocal => &[],
        }
    }
}

/// A family as it ran: the tier it attached at and why better tiers were skipped.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FamilyStatus {
    pub family: Family,
    pub tier: Tier,
    pub skipped: Vec<Skipped>,
    /// Softnet: whether its per-run hooks were attached all along or only while CPUs
    /// squeezed. Absent for other families, and in recordings before it was added (always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_hooks: Option<RunHooks>,
}

/// A family that was asked for and cannot run here: no tier of it works.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FamilyUnavailable {
    pub family: Family,
    pub why: String,
}
