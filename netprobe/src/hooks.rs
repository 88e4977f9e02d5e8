//! What a program attaches to, and how a family's programs are attached together. A family
//! offers variants, best tier first; a variant is a set of hooks attached together at one
//! tier: if any of them fails, the ones already attached are detached again before the next
//! variant is tried. The loader, the tier fallback and `doctor` all read these descriptions.

use aya::{
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, FEntry, FExit, KProbe,
        RawTracePoint, TracePoint,
    },
    Btf, Ebpf,
};
use netprobe_common::layout::{Args, KernelLayout};

use crate::{
    btf::{ArgKind, KernelBtf},
    cgroup, ebpf,
    error::Error,
    kallsyms::Kallsyms,
    tiers::{self, Skipped, Tier},
};

/// The tracepoint tiers, best first.
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
    fn program(&self, tier: Tier) -> Option<&'static str> {
        let i = TRACEPOINT_TIERS.iter().position(|t| *t == tier)?;
        self.programs[i]
    }

    /// This tracepoint as a hook of a variant at `tier`; None where it has no program there.
    pub fn hook(&'static self, tier: Tier) -> Option<Hook> {
        Some(Hook {
            program: self.program(self.attach_tier(tier)?)?,
            target: Target::Tracepoint(self),
        })
    }

    /// The tier this tracepoint attaches at in a variant of `tier`: that tier itself, or beside
    /// the functions of a function tier the best tracepoint tier from `tracepoint_tier(tier)`
    /// down that it has a program for (per-syscall events are classic only).
    fn attach_tier(&self, tier: Tier) -> Option<Tier> {
        let from = TRACEPOINT_TIERS.iter().position(|t| *t == tracepoint_tier(tier))?;
        let below = if tracepoint_tier(tier) == tier { from + 1 } else { TRACEPOINT_TIERS.len() };
        TRACEPOINT_TIERS[from..below].iter().copied().find(|t| self.program(*t).is_some())
    }
}

/// The tier a tracepoint hook attaches at in a variant of `tier`. A function-tier variant may
/// keep a tracepoint where no function says more; it needs no more of the kernel than the
/// functions do: tp_btf beside fentry (both BTF trampolines), raw tracepoint beside kprobe.
pub fn tracepoint_tier(tier: Tier) -> Tier {
    match tier {
        Tier::Fentry => Tier::TpBtf,
        Tier::Kprobe => Tier::RawTracepoint,
        t => t,
    }
}

/// A kernel function whose parameters a family's programs read: where they are comes from its
/// BTF prototype, never assumed. Without them its hooks are unavailable at both function
/// tiers, with the reason.
pub struct Function {
    pub name: &'static str,
    /// The module the function is in (its BTF is the module's); None: vmlinux.
    pub module: Option<&'static str>,
    /// The parameters the programs read, in layout order (at most `RET` of them).
    pub args: &'static [ArgKind],
    /// Where their offsets go in the layout.
    pub slot: fn(&mut KernelLayout) -> &mut [Args; 2],
}

/// What one program attaches to.
#[derive(Clone, Copy)]
pub enum Target {
    Tracepoint(&'static Tracepoint),
    /// A kernel function, at entry or at return: the first of `candidates` this kernel has
    /// (functions are renamed and split across versions).
    Function {
        candidates: &'static [&'static str],
        exit: bool,
    },
    /// The packets of every socket below the root cgroup v2, sent or received.
    Cgroup(CgroupSkbAttachType),
}

/// One program and what it attaches to.
#[derive(Clone, Copy)]
pub struct Hook {
    pub program: &'static str,
    pub target: Target,
}

impl Hook {
    /// `skb:kfree_skb`, or the function candidates.
    pub fn describe(&self) -> String {
        match self.target {
            Target::Tracepoint(tp) => format!("{}:{}", tp.category, tp.name),
            Target::Function { candidates, exit } => {
                format!("{}{}", candidates.join("|"), if exit { " (exit)" } else { "" })
            }
            Target::Cgroup(CgroupSkbAttachType::Egress) => "cgroup_skb/egress".into(),
            Target::Cgroup(CgroupSkbAttachType::Ingress) => "cgroup_skb/ingress".into(),
        }
    }
}

/// One way a family runs: every hook at one tier.
pub struct Variant {
    pub tier: Tier,
    pub hooks: Vec<Hook>,
}

/// Where one program of a variant attaches, by program type: what `cargo xtask bench` hangs
/// an empty program of the same type on, for the cost of the bare hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    TpBtf(&'static str),
    RawTracepoint(&'static str),
    Tracepoint(&'static str, &'static str),
    /// The function candidates, as in `Target::Function`.
    Fentry(&'static [&'static str]),
    Fexit(&'static [&'static str]),
    Kprobe(&'static [&'static str]),
    Kretprobe(&'static [&'static str]),
    /// Every socket's packets below the root cgroup v2, egress or ingress.
    CgroupSkb {
        egress: bool,
    },
}

impl Variant {
    pub fn points(&self) -> Vec<Point> {
        let point = |h: &Hook| match (h.target, tracepoint_tier(self.tier)) {
            (Target::Tracepoint(tp), Tier::TpBtf) => Point::TpBtf(tp.name),
            (Target::Tracepoint(tp), Tier::RawTracepoint) => Point::RawTracepoint(tp.name),
            (Target::Tracepoint(tp), _) => Point::Tracepoint(tp.category, tp.name),
            (Target::Cgroup(attach), _) => {
                Point::CgroupSkb { egress: matches!(attach, CgroupSkbAttachType::Egress) }
            }
            (Target::Function { candidates, exit }, _) => match (self.tier, exit) {
                (Tier::Fentry, false) => Point::Fentry(candidates),
                (Tier::Fentry, true) => Point::Fexit(candidates),
                (_, false) => Point::Kprobe(candidates),
                (_, true) => Point::Kretprobe(candidates),
            },
        };
        self.hooks.iter().map(point).collect()
    }
}

/// The tracepoint-tier variants of `tps`: one per tier at which every tracepoint has a
/// program (per-syscall events are classic only, so their families offer only that tier).
pub fn tracepoint_variants(tps: &[&'static Tracepoint]) -> Vec<Variant> {
    TRACEPOINT_TIERS
        .into_iter()
        .filter_map(|tier| {
            let hooks = tps.iter().map(|tp| tp.hook(tier)).collect::<Option<Vec<Hook>>>()?;
            Some(Variant { tier, hooks })
        })
        .collect()
}

/// A hook on a kernel function's return, and its programs: fexit (None for a module's
/// functions, see [`no_fentry_in`]), or a kprobe that keeps the arguments for a kretprobe.
pub struct Exit {
    pub candidates: &'static [&'static str],
    pub fexit: Option<&'static str>,
    pub kprobe: &'static str,
    pub kretprobe: &'static str,
}

/// The function-tier variants of `exits`, with `beside` (tracepoints no function replaces) at
/// the tracepoint tier each function tier goes with.
pub fn exit_variants(exits: &[Exit], beside: &[&'static Tracepoint]) -> Vec<Variant> {
    [Tier::Fentry, Tier::Kprobe]
        .into_iter()
        .filter_map(|tier| {
            let mut hooks = Vec::new();
            for e in exits {
                let at = |exit| Target::Function { candidates: e.candidates, exit };
                if tier == Tier::Fentry {
                    hooks.push(Hook { program: e.fexit?, target: at(true) });
                } else {
                    hooks.push(Hook { program: e.kprobe, target: at(false) });
                    hooks.push(Hook { program: e.kretprobe, target: at(true) });
                }
            }
            for tp in beside {
                hooks.push(tp.hook(tier)?);
            }
            Some(Variant { tier, hooks })
        })
        .collect()
}

/// Why a module's functions have no fentry/fexit programs (`doctor` says it).
pub fn no_fentry_in(module: &str) -> String {
    format!(
        "{module} is a module, and aya 0.13 cannot attach fentry/fexit to a module's functions \
         (it never sets attach_btf_obj_fd, aya issues #300/#301): its functions are hooked with \
         kprobes"
    )
}

/// A family as attached: the tier it runs at and why better tiers were skipped.
#[derive(Debug, Clone)]
pub struct Attached {
    pub tier: Tier,
    pub skipped: Vec<Skipped>,
    /// The programs attached, by name.
    pub programs: Vec<&'static str>,
    /// How to attach them again once detached.
    pub relink: Relink,
}

/// Why a tracepoint cannot be used at a tier, filled in by layout resolution.
pub type Unavailable = std::collections::HashMap<(&'static str, Tier), String>;

/// What attaching needs to know about the kernel.
pub struct Env<'a> {
    pub btf: &'a Btf,
    pub kernel_btf: &'a KernelBtf,
    pub kallsyms: &'a Kallsyms,
    pub unavailable: &'a Unavailable,
}

/// Attaches the first of `variants` whose hooks all load and attach. The links stay with the
/// programs in `bpf` until it is dropped, or until the returned `Links` are detached.
pub fn attach_family(
    family: &'static str,
    bpf: &mut Ebpf,
    env: &Env,
    variants: &[Variant],
) -> Result<(Attached, Links), Error> {
    let tiers: Vec<Tier> = variants.iter().map(|v| v.tier).collect();
    let ((links, relink), tier, skipped) = tiers::first_working(family, &tiers, |tier| {
        let variant = variants.iter().find(|v| v.tier == tier).expect("listed above");
        attach(bpf, env, variant)
    })?;
    let variant = variants.iter().find(|v| v.tier == tier).expect("attached above");
    let programs = variant.hooks.iter().map(|h| h.program).collect();
    Ok((Attached { tier, skipped, programs, relink }, links))
}

/// Loads every program of `variant` and attaches it, then detaches it again: whether this
/// tier really works here (`doctor`).
pub fn probe(bpf: &mut Ebpf, env: &Env, variant: &Variant) -> Result<(), Error> {
    attach(bpf, env, variant)?.0.detach(bpf);
    Ok(())
}

/// Attaches a variant attached once before (its programs loaded, its targets resolved) again.
pub fn relink(bpf: &mut Ebpf, relink: &Relink) -> Result<Links, Error> {
    let mut links = Links(Vec::new());
    for (program, target) in &relink.0 {
        match link(bpf, program, program, *target) {
            Ok(l) => links.0.push(l),
            Err(e) => {
                links.detach(bpf);
                return Err(e);
            }
        }
    }
    Ok(links)
}

/// Detaches one link.
type Detach = Box<dyn FnOnce(&mut Ebpf) + Send>;

/// Links that `attach` or `relink` made, to detach together.
#[must_use]
pub struct Links(Vec<Detach>);

impl Links {
    pub fn detach(self, bpf: &mut Ebpf) {
        for u in self.0 {
            u(bpf);
        }
    }
}

/// What a loaded program attaches to, resolved: enough to attach it again without the
/// kernel's BTF or kallsyms.
#[derive(Debug, Clone, Copy)]
enum Resolved {
    TpBtf,
    Raw(&'static str),
    Classic(&'static str, &'static str),
    FEntry,
    FExit,
    KProbe(&'static str),
    Cgroup(CgroupSkbAttachType),
}

/// A variant's programs as resolved, to attach again (`relink`) after its links were detached.
#[derive(Debug, Clone, Default)]
pub struct Relink(Vec<(&'static str, Resolved)>);

/// Attaches all of a variant's hooks, or none: a failure detaches the ones attached so far.
fn attach(bpf: &mut Ebpf, env: &Env, variant: &Variant) -> Result<(Links, Relink), Error> {
    let mut links = Links(Vec::new());
    let mut relink = Relink::default();
    for hook in &variant.hooks {
        match resolve(bpf, env, hook, variant.tier)
            .and_then(|r| Ok((r, link(bpf, hook.program, &hook.describe(), r)?)))
        {
            Ok((r, l)) => {
                links.0.push(l);
                relink.0.push((hook.program, r));
            }
            Err(e) => {
                links.detach(bpf);
                return Err(e);
            }
        }
    }
    Ok((links, relink))
}

/// Detaches one link again; the program is looked up anew, since the borrow of `bpf` ends.
macro_rules! undo {
    ($ty:ty, $name:expr, $link:expr) => {{
        let (name, link) = ($name, $link);
        Box::new(move |bpf: &mut Ebpf| {
            if let Ok(p) = ebpf::program::<$ty>(bpf, name) {
                let _ = p.detach(link);
            }
        }) as Detach
    }};
}

/// Loads a program unless an earlier variant did: a tracepoint hook is shared by a function
/// variant and its own tier (napi_poll at fentry and tp_btf), and a program loads only once.
macro_rules! load_once {
    ($p:expr, $load:expr) => {
        if $p.fd().is_err() {
            $load
        }
    };
}

/// Loads a hook's program (unless loaded) and names what it attaches to.
fn resolve(bpf: &mut Ebpf, env: &Env, hook: &Hook, tier: Tier) -> Result<Resolved, Error> {
    let name = hook.program;
    let failed = |e: aya::programs::ProgramError| {
        Error::Tier(format!("{}: {}", hook.describe(), ebpf::describe(&e)))
    };
    match (hook.target, tier) {
        (Target::Tracepoint(tp), tier) => {
            let tier = tp.attach_tier(tier).ok_or_else(|| {
                Error::Tier(format!("{}: no program at the {tier} tier", hook.describe()))
            })?;
            if let Some(why) = env.unavailable.get(&(tp.name, tier)) {
                return Err(Error::Tier(why.clone()));
            }
            match tier {
                Tier::TpBtf => {
                    let p: &mut BtfTracePoint = ebpf::program(bpf, name)?;
                    load_once!(p, p.load(tp.name, env.btf).map_err(failed)?);
                    Ok(Resolved::TpBtf)
                }
                Tier::RawTracepoint => {
                    let p: &mut RawTracePoint = ebpf::program(bpf, name)?;
                    load_once!(p, p.load().map_err(failed)?);
                    Ok(Resolved::Raw(tp.name))
                }
                Tier::Tracepoint => {
                    let p: &mut TracePoint = ebpf::program(bpf, name)?;
                    load_once!(p, p.load().map_err(failed)?);
                    Ok(Resolved::Classic(tp.category, tp.name))
                }
                Tier::Fentry | Tier::Kprobe => unreachable!("mapped to a tracepoint tier above"),
                Tier::CgroupSkb => {
                    Err(Error::Tier("a tracepoint cannot be hooked at the cgroup_skb tier".into()))
                }
            }
        }
        (Target::Function { candidates, exit }, Tier::Fentry) => {
            let function = first_function(candidates, |f| env.kernel_btf.has_function(f))?;
            unresolved(env, function, tier)?;
            if exit {
                let p: &mut FExit = ebpf::program(bpf, name)?;
                load_once!(p, p.load(function, env.btf).map_err(failed)?);
                Ok(Resolved::FExit)
            } else {
                let p: &mut FEntry = ebpf::program(bpf, name)?;
                load_once!(p, p.load(function, env.btf).map_err(failed)?);
                Ok(Resolved::FEntry)
            }
        }
        (Target::Function { candidates, .. }, Tier::Kprobe) => {
            let function = first_function(candidates, |f| env.kallsyms.address(f).is_some())?;
            unresolved(env, function, tier)?;
            let p: &mut KProbe = ebpf::program(bpf, name)?;
            load_once!(p, p.load().map_err(failed)?);
            Ok(Resolved::KProbe(function))
        }
        (Target::Function { .. }, _) => {
            Err(Error::Tier(format!("a kernel function cannot be hooked at the {tier} tier")))
        }
        (Target::Cgroup(attach), Tier::CgroupSkb) => {
            let p: &mut CgroupSkb = ebpf::program(bpf, name)?;
            load_once!(p, p.load().map_err(failed)?);
            Ok(Resolved::Cgroup(attach))
        }
        (Target::Cgroup(_), _) => {
            Err(Error::Tier(format!("cgroup_skb programs cannot attach at the {tier} tier")))
        }
    }
}

/// Attaches a loaded program to what `resolve` named; errors say `what` failed.
fn link(bpf: &mut Ebpf, name: &'static str, what: &str, target: Resolved) -> Result<Detach, Error> {
    let failed =
        |e: aya::programs::ProgramError| Error::Tier(format!("{what}: {}", ebpf::describe(&e)));
    Ok(match target {
        Resolved::TpBtf => {
            let p: &mut BtfTracePoint = ebpf::program(bpf, name)?;
            undo!(BtfTracePoint, name, p.attach().map_err(failed)?)
        }
        Resolved::Raw(tp) => {
            let p: &mut RawTracePoint = ebpf::program(bpf, name)?;
            undo!(RawTracePoint, name, p.attach(tp).map_err(failed)?)
        }
        Resolved::Classic(category, tp) => {
            let p: &mut TracePoint = ebpf::program(bpf, name)?;
            undo!(TracePoint, name, p.attach(category, tp).map_err(failed)?)
        }
        Resolved::FEntry => {
            let p: &mut FEntry = ebpf::program(bpf, name)?;
            undo!(FEntry, name, p.attach().map_err(failed)?)
        }
        Resolved::FExit => {
            let p: &mut FExit = ebpf::program(bpf, name)?;
            undo!(FExit, name, p.attach().map_err(failed)?)
        }
        Resolved::KProbe(function) => {
            let p: &mut KProbe = ebpf::program(bpf, name)?;
            let link = p.attach(function, 0).map_err(|e| match tiers::kprobe_missing() {
                Some(why) => Error::Tier(why),
                None => failed(e),
            })?;
            undo!(KProbe, name, link)
        }
        Resolved::Cgroup(attach) => {
            let root = cgroup::root()?;
            let dir = std::fs::File::open(&root)
                .map_err(|e| Error::Tier(format!("cgroup2 root {}: {e}", root.display())))?;
            let p: &mut CgroupSkb = ebpf::program(bpf, name)?;
            // aya attaches through a BPF link (5.7+), which always runs alongside whatever
            // else is attached there (systemd's, a CNI's) and takes no flags: `Single` is 0.
            let link = p.attach(dir, attach, CgroupAttachMode::Single).map_err(failed)?;
            undo!(CgroupSkb, name, link)
        }
    })
}

/// Why the parameters of `function` could not be found, when its programs read them.
fn unresolved(env: &Env, function: &str, tier: Tier) -> Result<(), Error> {
    match env.unavailable.get(&(function, tier)) {
        Some(why) => Err(Error::Tier(why.clone())),
        None => Ok(()),
    }
}

/// The first candidate this kernel has, or why none fits.
fn first_function(
    candidates: &'static [&'static str],
    has: impl Fn(&str) -> bool,
) -> Result<&'static str, Error> {
    candidates.iter().copied().find(|f| has(f)).ok_or_else(|| {
        Error::Tier(format!(
            "this kernel has none of {} (absent, renamed or inlined)",
            candidates.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Family;

    fn hooks(family: Family, tier: Tier) -> Vec<(&'static str, String)> {
        let variants = family.variants();
        let v = variants.iter().find(|v| v.tier == tier).expect("a variant at this tier");
        v.hooks.iter().map(|h| (h.program, h.describe())).collect()
    }

    #[test]
    fn function_tiers_keep_classic_only_tracepoints_beside_them() {
        // bind() has only classic syscall tracepoints: beside fexit they attach at that tier.
        let fentry = hooks(Family::Ports, Tier::Fentry);
        assert!(
            fentry.contains(&("ports_bind_conflict_fexit", "inet_csk_bind_conflict (exit)".into()))
        );
        assert!(fentry.contains(&("ports_enter_bind", "syscalls:sys_enter_bind".into())));
        assert!(!fentry.iter().any(|(_, d)| d.contains("connect") && d.starts_with("syscalls")));
        // A kretprobe comes with the kprobe that keeps its arguments.
        let kprobe = hooks(Family::Tcp, Tier::Kprobe);
        assert!(kprobe.contains(&("tcp_retrans_kprobe", "tcp_retransmit_skb".into())));
        assert!(kprobe.contains(&("tcp_retrans_kretprobe", "tcp_retransmit_skb (exit)".into())));
        assert!(kprobe.contains(&("tcp_synack_raw_tp", "tcp:tcp_retransmit_synack".into())));
        // A tracepoint tier keeps to its own tier.
        let tp = TRACEPOINT_TIERS.map(|t| Family::Tcp.variants().iter().any(|v| v.tier == t));
        assert_eq!(tp, [true; 3]);
    }

    #[test]
    fn a_module_function_has_no_fentry_variant() {
        let tiers: Vec<Tier> = Family::Conntrack.variants().iter().map(|v| v.tier).collect();
        assert_eq!(tiers, vec![Tier::Kprobe, Tier::Tracepoint]);
        assert!(hooks(Family::Conntrack, Tier::Kprobe)
            .contains(&("conntrack_console", "printk:console".into())));
    }
}
