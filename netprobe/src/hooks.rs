//! How a hook family's tracepoints are described, resolved and attached. A family is a set of
//! tracepoints attached together at one tier: if any of them fails at a tier, the ones already
//! attached at that tier are detached again before the next tier is tried.

use aya::{
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
    Btf, Ebpf,
};
use netprobe_common::layout::{Args, KernelLayout};

use crate::{
    btf::ArgKind,
    ebpf,
    error::Error,
    tiers::{self, Skipped, Tier},
};

/// The tracepoint tiers, best first. Families whose hooks are tracepoints use these; fentry
/// and kprobe upgrades are per family.
pub const TRACEPOINT_TIERS: [Tier; 3] = [Tier::TpBtf, Tier::RawTracepoint, Tier::Tracepoint];

/// One tracepoint a family hooks, and how its programs find their arguments.
pub struct Tracepoint {
    pub category: &'static str,
    pub name: &'static str,
    /// The arguments the programs read, in layout order, by BTF type (tp_btf, raw tracepoint).
    pub btf_args: &'static [ArgKind],
    /// The same arguments by field name in the format file (classic tracepoint).
    pub fields: &'static [&'static str],
    /// Program names for tp_btf, raw tracepoint and classic tracepoint; None where the
    /// tracepoint has no such form (per-syscall events are classic only).
    pub programs: [Option<&'static str>; 3],
    /// Where its offsets go in the layout.
    pub slot: fn(&mut KernelLayout) -> &mut [Args; 2],
}

impl Tracepoint {
    pub fn program(&self, tier: Tier) -> Option<&'static str> {
        match tier {
            Tier::TpBtf => self.programs[0],
            Tier::RawTracepoint => self.programs[1],
            Tier::Tracepoint => self.programs[2],
            Tier::Fentry | Tier::Kprobe => None,
        }
    }
}

/// A family as attached: the tier it runs at and why better tiers were skipped.
#[derive(Debug, Clone)]
pub struct Attached {
    pub tier: Tier,
    pub skipped: Vec<Skipped>,
}

/// Why a tracepoint cannot be used at a tier, filled in by layout resolution.
pub type Unavailable = std::collections::HashMap<(&'static str, Tier), String>;

/// Attaches all of `tps` at the first tier where every one of them loads and attaches.
pub fn attach_family(
    family: &'static str,
    bpf: &mut Ebpf,
    btf: &Btf,
    unavailable: &Unavailable,
    tps: &[&Tracepoint],
) -> Result<Attached, Error> {
    // Tiers some hook has no form at (per-syscall events are classic only) are not tried, so
    // they do not show up as skipped.
    // NETPROBE_TIER=tp_btf|raw_tracepoint|tracepoint tries that tier only: the kernel matrix
    // (cargo xtask vm-test) runs a family at each tier a kernel offers.
    let forced = std::env::var("NETPROBE_TIER").ok().filter(|t| !t.is_empty());
    let offered: Vec<Tier> = TRACEPOINT_TIERS
        .into_iter()
        .filter(|t| tps.iter().all(|tp| tp.program(*t).is_some()))
        .filter(|t| forced.as_deref().is_none_or(|f| t.to_string() == f))
        .collect();
    let ((), tier, skipped) = tiers::first_working(family, &offered, |tier| {
        let mut undo: Vec<Undo> = Vec::new();
        for tp in tps {
            match attach_one(bpf, btf, unavailable, tp, tier, true) {
                Ok(Some(u)) => undo.push(u),
                Ok(None) => {}
                Err(e) => {
                    for u in undo {
                        u(bpf);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    })?;
    Ok(Attached { tier, skipped })
}

/// Loads one tracepoint's program at `tier`, verifier only, for `doctor`.
pub fn probe(
    bpf: &mut Ebpf,
    btf: &Btf,
    unavailable: &Unavailable,
    tp: &Tracepoint,
    tier: Tier,
) -> Result<(), Error> {
    attach_one(bpf, btf, unavailable, tp, tier, false).map(drop)
}

type Undo = Box<dyn FnOnce(&mut Ebpf)>;

fn attach_one(
    bpf: &mut Ebpf,
    btf: &Btf,
    unavailable: &Unavailable,
    tp: &Tracepoint,
    tier: Tier,
    attach: bool,
) -> Result<Option<Undo>, Error> {
    if let Some(why) = unavailable.get(&(tp.name, tier)) {
        return Err(Error::Tier(why.clone()));
    }
    let name = tp
        .program(tier)
        .ok_or_else(|| Error::Tier(format!("{}:{} has no {tier} form", tp.category, tp.name)))?;
    let failed = |e: aya::programs::ProgramError| {
        Error::Tier(format!("{}:{}: {}", tp.category, tp.name, ebpf::describe(&e)))
    };
    // Undo closures look the program up again: the borrow of `bpf` ends here.
    Ok(match tier {
        Tier::TpBtf => {
            let p: &mut BtfTracePoint = ebpf::program(bpf, name)?;
            p.load(tp.name, btf).map_err(failed)?;
            if !attach {
                return Ok(None);
            }
            let link = p.attach().map_err(failed)?;
            Some(Box::new(move |bpf: &mut Ebpf| {
                if let Ok(p) = ebpf::program::<BtfTracePoint>(bpf, name) {
                    let _ = p.detach(link);
                }
            }))
        }
        Tier::RawTracepoint => {
            let p: &mut RawTracePoint = ebpf::program(bpf, name)?;
            p.load().map_err(failed)?;
            if !attach {
                return Ok(None);
            }
            let link = p.attach(tp.name).map_err(failed)?;
            Some(Box::new(move |bpf: &mut Ebpf| {
                if let Ok(p) = ebpf::program::<RawTracePoint>(bpf, name) {
                    let _ = p.detach(link);
                }
            }))
        }
        Tier::Tracepoint => {
            let p: &mut TracePoint = ebpf::program(bpf, name)?;
            p.load().map_err(failed)?;
            if !attach {
                return Ok(None);
            }
            let link = p.attach(tp.category, tp.name).map_err(failed)?;
            Some(Box::new(move |bpf: &mut Ebpf| {
                if let Ok(p) = ebpf::program::<TracePoint>(bpf, name) {
                    let _ = p.detach(link);
                }
            }))
        }
        Tier::Fentry | Tier::Kprobe => {
            return Err(Error::Tier(format!("{tier} is not a tracepoint tier")));
        }
    })
}
