//! Softnet (incident 01, "CPU softnet times squeezed"): per CPU, the NET_RX softirq runs, the
//! packets they handled, how long they took, and the runs the kernel cut short on
//! net.core.netdev_budget or netdev_budget_usecs with work left. Backlog overflow drops
//! (CPU_BACKLOG) come from the drops family, per pod.

pub mod findings;
pub mod metrics;
pub mod on_squeeze;
pub mod report;
pub mod snapshot;
pub mod timeline;

use std::fs;

use netprobe_common::softnet::SqueezeEvent;

use crate::{
    btf::ArgKind,
    hooks::{Hook, Target, Tracepoint, Variant},
    names::Names,
    tiers::Tier,
    wire,
};

pub const TRACEPOINTS: &[&Tracepoint] = &[
    &Tracepoint {
        category: "irq",
        name: "softirq_entry",
        btf_args: &[ArgKind::Int(0)],
        fields: &["vec"],
        programs: [
            Some("softnet_entry_tp_btf"),
            Some("softnet_entry_raw_tp"),
            Some("softnet_entry_tp"),
        ],
        slot: |l| &mut l.softirq_entry,
    },
    &Tracepoint {
        category: "irq",
        name: "softirq_exit",
        btf_args: &[ArgKind::Int(0)],
        fields: &["vec"],
        programs: [
            Some("softnet_exit_tp_btf"),
            Some("softnet_exit_raw_tp"),
            Some("softnet_exit_tp"),
        ],
        slot: |l| &mut l.softirq_exit,
    },
    &NAPI_POLL,
];

static NAPI_POLL: Tracepoint = Tracepoint {
    category: "napi",
    name: "napi_poll",
    btf_args: &[ArgKind::StructPtr("napi_struct"), ArgKind::Int(0)],
    fields: &["napi", "work"],
    programs: [Some("softnet_poll_tp_btf"), Some("softnet_poll_raw_tp"), Some("softnet_poll_tp")],
    slot: |l| &mut l.napi_poll_args,
};

/// net_rx_action is the NET_RX handler: its entry and return bound one run without seeing
/// every other softirq. Packets still come from napi:napi_poll, which no function beats.
/// net_rx_action runs at most once per CPU at a time, so a kretprobe's default maxactive (at
/// least the CPU count) never runs out.
pub fn function_variants() -> Vec<Variant> {
    const NET_RX_ACTION: &[&str] = &["net_rx_action"];
    let at = |exit| Target::Function { candidates: NET_RX_ACTION, exit };
    [
        (Tier::Fentry, "softnet_rx_fentry", "softnet_rx_fexit"),
        (Tier::Kprobe, "softnet_rx_kprobe", "softnet_rx_kretprobe"),
    ]
    .into_iter()
    .filter_map(|(tier, entry, exit)| {
        let hooks = vec![
            Hook { program: entry, target: at(false) },
            Hook { program: exit, target: at(true) },
            NAPI_POLL.hook(tier)?,
        ];
        Some(Variant { tier, hooks })
    })
    .collect()
}

pub const COUNTERS_MAP: &str = "SOFTNET_COUNTERS";
/// The run in progress per CPU.
pub const RUN_MAP: &str = "SOFTNET_RUN";

/// One CPU's NET_RX work (docs/json.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuSoftnet {
    pub cpu: u32,
    pub runs: u64,
    pub packets: u64,
    pub busy_ns: u64,
    pub squeezes: u64,
    pub covered_runs: u64,
}

/// The knobs that decide when a run is squeezed, and how deep the backlog may get.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Knobs {
    pub netdev_budget: Option<u64>,
    pub netdev_budget_usecs: Option<u64>,
    pub netdev_max_backlog: Option<u64>,
}

impl Knobs {
    pub fn read() -> Self {
        let get = |k: &str| {
            fs::read_to_string(format!("/proc/sys/net/core/{k}")).ok()?.trim().parse().ok()
        };
        Self {
            netdev_budget: get("netdev_budget"),
            netdev_budget_usecs: get("netdev_budget_usecs"),
            netdev_max_backlog: get("netdev_max_backlog"),
        }
    }
}

/// A squeezed NET_RX run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SqueezeSample {
    pub time: String,
    pub ts_ns: u64,
    pub cpu: u32,
    pub duration_us: f64,
    pub packets: u64,
    /// time_squeeze increments in this run (1, unless runs nested oddly).
    pub squeezes: u32,
}

pub fn decode(bytes: &[u8], names: &Names) -> Option<SqueezeSample> {
    let ev = wire::read::<SqueezeEvent>(bytes)?;
    Some(SqueezeSample {
        time: names.clock.wall(ev.header.ts_ns),
        ts_ns: ev.header.ts_ns,
        cpu: ev.header.cpu,
        duration_us: ev.duration_ns as f64 / 1000.0,
        packets: ev.packets,
        squeezes: ev.squeezes,
    })
}

/// A CPU's, in no netns and no pod.
impl crate::event::Sample for SqueezeSample {
    fn netns(&self) -> u32 {
        0
    }

    fn set_pod(&mut self, _: String) {}

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: Some(self.cpu),
            pod: "-",
            what: "TIME_SQUEEZE",
            flow: format!("NET_RX run of {} packets", self.packets),
            tail: format!("{:.0} us, stopped with work left", self.duration_us),
        }
    }
}
