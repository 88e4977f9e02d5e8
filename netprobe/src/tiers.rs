//! Hook tiers, best first, and what each needs. A tier is used because loading it worked on
//! this kernel, never because the kernel version suggests it should.

use std::{fmt, path::Path};

use aya::{programs::FEntry, Btf};

use crate::{ebpf, error::Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Fentry,
    Kprobe,
    TpBtf,
    RawTracepoint,
    Tracepoint,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Fentry => "fentry",
            Tier::Kprobe => "kprobe",
            Tier::TpBtf => "tp_btf",
            Tier::RawTracepoint => "raw_tracepoint",
            Tier::Tracepoint => "tracepoint",
        })
    }
}

impl Tier {
    pub fn needs(self) -> &'static str {
        match self {
            Tier::Fentry => "BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) and BTF",
            Tier::Kprobe => "CONFIG_KPROBES and the kprobe PMU",
            Tier::TpBtf => "BTF; reads arguments as typed pointers, cheapest tracepoint tier",
            Tier::RawTracepoint => "raw tracepoint support (4.17+)",
            Tier::Tracepoint => "tracefs; the record is copied per call (~40 ns more)",
        }
    }
}

/// Whether fentry programs load here, by loading a do-nothing one.
pub fn probe_fentry(btf: &Btf) -> Result<(), String> {
    let mut bpf = ebpf::load_plain().map_err(|e| e.to_string())?;
    let prog: &mut FEntry = ebpf::program(&mut bpf, "probe_fentry").map_err(|e| e.to_string())?;
    prog.load("net_rx_action", btf).map_err(|e| ebpf::describe(&e))
}

/// kprobes need the kprobe PMU; when the kernel is built without them it is absent.
pub fn probe_kprobe() -> Result<(), String> {
    if Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        Ok(())
    } else {
        Err("the kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe): built without CONFIG_KPROBES".into())
    }
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
