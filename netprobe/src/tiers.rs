//! Hook tiers, best first, and what each needs. A tier is used because loading it worked on
//! this kernel, never because the kernel version suggests it should.

use std::{fmt, path::Path};

use crate::{
    error::Error,
    hooks::{Hook, Target, Variant},
};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Tier {
    Fentry,
    Kprobe,
    TpBtf,
    RawTracepoint,
    Tracepoint,
    /// Not a tracepoint: programs on a cgroup's packets (the root cgroup v2's), for families
    /// that count packets of sockets.
    CgroupSkb,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Fentry => "fentry",
            Tier::Kprobe => "kprobe",
            Tier::TpBtf => "tp_btf",
            Tier::RawTracepoint => "raw_tracepoint",
            Tier::Tracepoint => "tracepoint",
            Tier::CgroupSkb => "cgroup_skb",
        })
    }
}

impl Tier {
    /// Best first.
    pub const ALL: [Tier; 6] = [
        Tier::Fentry,
        Tier::Kprobe,
        Tier::TpBtf,
        Tier::RawTracepoint,
        Tier::Tracepoint,
        Tier::CgroupSkb,
    ];

    /// Tracing tiers hook kernel functions or tracepoints; the others hook packets.
    pub fn is_tracing(self) -> bool {
        self != Tier::CgroupSkb
    }

    pub fn needs(self) -> &'static str {
        match self {
            Tier::Fentry => "BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) and BTF",
            Tier::Kprobe => "CONFIG_KPROBES and the kprobe PMU",
            Tier::TpBtf => "BTF; reads arguments as typed pointers, cheapest tracepoint tier",
            Tier::RawTracepoint => "raw tracepoint support (4.17+)",
            Tier::Tracepoint => "tracefs; the record is copied per call (~40 ns more)",
            Tier::CgroupSkb => {
                "the node's cgroup v2 root (mounted, or mountable) and CAP_NET_ADMIN"
            }
        }
    }
}

/// Do-nothing programs on a function every kernel has: whether the function tiers load and
/// attach here at all (`doctor`), before any family is tried.
pub fn probes() -> [Variant; 2] {
    const NET_RX_ACTION: &[&str] = &["net_rx_action"];
    let function = Target::Function { candidates: NET_RX_ACTION, exit: false };
    [
        Variant {
            tier: Tier::Fentry,
            hooks: vec![Hook { program: "probe_fentry", target: function }],
        },
        Variant {
            tier: Tier::Kprobe,
            hooks: vec![Hook { program: "probe_kprobe", target: function }],
        },
    ]
}

/// Why kprobes cannot work here, when the kernel is built without them (no kprobe PMU).
pub fn kprobe_missing() -> Option<String> {
    (!Path::new("/sys/bus/event_source/devices/kprobe").exists()).then(|| {
        "the kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe): built without \
         CONFIG_KPROBES"
            .into()
    })
}

/// A tier that was tried and skipped, with why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub tier: Tier,
    pub why: String,
}

/// Tries `tiers` in order with `attempt`, returning the first that works and why the ones
/// before it did not.
pub fn first_working<T>(
    family: &'static str,
    tiers: &[Tier],
    mut attempt: impl FnMut(Tier) -> Result<T, Error>,
) -> Result<(T, Tier, Vec<Skipped>), Error> {
    let mut skipped = Vec::new();
    for &tier in tiers {
        match attempt(tier) {
            Ok(v) => return Ok((v, tier, skipped)),
            Err(e @ (Error::StubObject | Error::NoBtf)) => return Err(e),
            Err(e) => skipped.push(Skipped { tier, why: e.to_string() }),
        }
    }
    Err(Error::NoTier {
        family,
        tried: skipped.iter().map(|s| format!("{}: {}", s.tier, s.why)).collect(),
    })
}
