//! Loading and attaching the kfree_skb program at the best tier the kernel allows.

use std::collections::BTreeMap;

use aya::{
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{BtfTracePoint, RawTracePoint, TracePoint},
    Btf, Ebpf,
};
use netprobe_common::{drops::DropKey, layout::Filter, stats};

use crate::{
    btf::{ArgKind, KernelBtf},
    ebpf,
    error::Error,
    layout,
    tiers::{self, Skipped, Tier},
    tracefs,
};

pub const TIERS: &[Tier] = &[Tier::TpBtf, Tier::RawTracepoint, Tier::Tracepoint];
const TRACEPOINT: (&str, &str) = ("skb", "kfree_skb");

pub struct Drops {
    // Dropping this detaches and unloads every program: links are owned, never pinned.
    _ebpf: Ebpf,
    pub tier: Tier,
    pub skipped: Vec<Skipped>,
    pub samples: RingBuf<MapData>,
    counts: PerCpuHashMap<MapData, DropKey, u64>,
    stats: PerCpuArray<MapData, u64>,
}

/// The agent's own counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub lost_samples: u64,
    pub counter_overflow: u64,
    pub read_errors: u64,
}

impl Drops {
    /// Attaches at the first tier of [`TIERS`] that loads and attaches here.
    pub fn attach(btf: &KernelBtf, aya_btf: &Btf, filter: Filter) -> Result<Self, Error> {
        let (mut ebpf, tier, skipped) = tiers::first_working("drops", TIERS, |tier| {
            try_tier(btf, aya_btf, filter, tier, true)
        })?;
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| Error::Layout(format!("map {name} missing from the object")))
        };
        let samples = RingBuf::try_from(take(&mut ebpf, "SAMPLES")?)?;
        let counts = PerCpuHashMap::try_from(take(&mut ebpf, "DROP_COUNTS")?)?;
        let stats = PerCpuArray::try_from(take(&mut ebpf, "STATS")?)?;
        Ok(Self { _ebpf: ebpf, tier, skipped, samples, counts, stats })
    }

    /// Exact drop counts so far, by (netns, reason).
    pub fn counts(&self) -> Result<BTreeMap<DropKey, u64>, Error> {
        let mut out = BTreeMap::new();
        for entry in self.counts.iter() {
            let (key, per_cpu) = entry?;
            out.insert(key, per_cpu.iter().sum());
        }
        Ok(out)
    }

    pub fn health(&self) -> Result<Health, Error> {
        let sum = |i| -> Result<u64, Error> { Ok(self.stats.get(&i, 0)?.iter().sum()) };
        Ok(Health {
            lost_samples: sum(stats::LOST_SAMPLES)?,
            counter_overflow: sum(stats::DROP_KEYS_FULL)?,
            read_errors: sum(stats::READ_ERRORS)?,
        })
    }
}

/// Loads (and with `attach`, attaches) the program of one tier; `doctor` probes with
/// `attach = false`.
pub fn try_tier(
    btf: &KernelBtf,
    aya_btf: &Btf,
    filter: Filter,
    tier: Tier,
    attach: bool,
) -> Result<Ebpf, Error> {
    let mut layout = layout::resolve(btf)?;
    let [skb, location, reason] = arg_offsets(btf, tier)?;
    layout.kfree_skb_skb = skb;
    layout.kfree_skb_location = location;
    layout.kfree_skb_reason = reason;

    let mut bpf = ebpf::load(&layout, &filter)?;
    let failed = |e: aya::programs::ProgramError| Error::Layout(ebpf::describe(&e));
    match tier {
        Tier::TpBtf => {
            let p: &mut BtfTracePoint = ebpf::program(&mut bpf, "drops_tp_btf")?;
            p.load(TRACEPOINT.1, aya_btf).map_err(failed)?;
            if attach {
                p.attach().map_err(failed)?;
            }
        }
        Tier::RawTracepoint => {
            let p: &mut RawTracePoint = ebpf::program(&mut bpf, "drops_raw_tp")?;
            p.load().map_err(failed)?;
            if attach {
                p.attach(TRACEPOINT.1).map_err(failed)?;
            }
        }
        Tier::Tracepoint => {
            let p: &mut TracePoint = ebpf::program(&mut bpf, "drops_tp")?;
            p.load().map_err(failed)?;
            if attach {
                p.attach(TRACEPOINT.0, TRACEPOINT.1).map_err(failed)?;
            }
        }
        Tier::Fentry | Tier::Kprobe => {
            return Err(Error::Layout(format!("{tier} is not a tier of kfree_skb")));
        }
    }
    Ok(bpf)
}

/// Where skb, location and reason sit in the program context of `tier`: from the
/// tracepoint's BTF prototype for tp_btf and raw tracepoints, from its format file otherwise.
fn arg_offsets(btf: &KernelBtf, tier: Tier) -> Result<[u32; 3], Error> {
    if tier == Tier::Tracepoint {
        let fields = tracefs::format(TRACEPOINT.0, TRACEPOINT.1)?;
        let get = |name: &str| {
            fields
                .get(name)
                .map(|(off, _)| *off)
                .ok_or_else(|| Error::Layout(format!("skb:kfree_skb format has no field {name}")))
        };
        return Ok([get("skbaddr")?, get("location")?, get("reason")?]);
    }
    let offs = btf.tracepoint_args(
        TRACEPOINT.1,
        &[
            ArgKind::struct_ptr("sk_buff"),
            ArgKind::VoidPtr,
            ArgKind::enumeration("skb_drop_reason"),
        ],
    )?;
    Ok([offs[0], offs[1], offs[2]])
}
