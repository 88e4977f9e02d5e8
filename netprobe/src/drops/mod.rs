//! skb:kfree_skb: why packets were dropped, where in the kernel, and in which pod.

pub mod decode;

use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuHashMap};
use netprobe_common::drops::DropKey;

pub use decode::DropSample;

use crate::{btf::ArgKind, error::Error, hooks::Tracepoint};

pub const TRACEPOINTS: &[&Tracepoint] = &[&Tracepoint {
    category: "skb",
    name: "kfree_skb",
    btf_args: &[ArgKind::StructPtr("sk_buff"), ArgKind::VoidPtr, ArgKind::Enum("skb_drop_reason")],
    fields: &["skbaddr", "location", "reason"],
    programs: [Some("drops_tp_btf"), Some("drops_raw_tp"), Some("drops_tp")],
    slot: |l| &mut l.kfree_skb,
}];

pub const COUNTS_MAP: &str = "DROP_COUNTS";

/// Exact drop counts so far, by (netns, reason).
pub fn counts(map: &PerCpuHashMap<MapData, DropKey, u64>) -> Result<BTreeMap<DropKey, u64>, Error> {
    let mut out = BTreeMap::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry?;
        out.insert(key, per_cpu.iter().sum());
    }
    Ok(out)
}
