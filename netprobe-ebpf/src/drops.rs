//! skb:kfree_skb. Every drop bumps its exact (netns, reason) count; a sample goes to the ring
//! buffer for the pods being watched, when drops are sampled at all (watch). Three entry points, one per tier, share one body.

use aya_ebpf::{macros::map, maps::PerCpuHashMap};
use netprobe_common::{
    drops::{DropEvent, DropKey},
    event::kind,
    stats,
};

use crate::kernel::{
    bump, count, drop_samples, header, sk_netns, skb_flow, skb_netns, submit, tp_arg,
    tp_optional_arg, tracepoint_tiers, wanted, Access, LAYOUT, SAMPLES,
};

#[map]
static DROP_COUNTS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

tracepoint_tiers!("skb" / "kfree_skb" => on_kfree_skb: drops_tp_btf, drops_raw_tp, drops_tp);

/// Argument order in `LAYOUT.kfree_skb`.
const SKB: usize = 0;
const LOCATION: usize = 1;
/// Absent before 5.17 (no drop reasons): such drops count as reason 0, known by location.
const REASON: usize = 2;
/// Absent before 6.11.
const RX_SK: usize = 3;

#[inline(always)]
fn on_kfree_skb(ctx: u64, variant: usize) {
    let (layout, a) = (&LAYOUT.kfree_skb, Access::of(variant));
    let skb = tp_arg(ctx, layout, variant, SKB);
    let reason = tp_optional_arg(ctx, layout, variant, REASON) as u32;
    let location = tp_arg(ctx, layout, variant, LOCATION);
    let (mut netns, ifindex) = skb_netns(a, skb);
    if netns == 0 {
        netns = sk_netns(a, tp_optional_arg(ctx, layout, variant, RX_SK));
    }
    count(&DROP_COUNTS, &DropKey { netns, reason, location }, 1);
    if !drop_samples() || !wanted(netns) {
        return;
    }
    let Some(mut entry) = SAMPLES.reserve::<DropEvent>(0) else {
        bump(stats::LOST_SAMPLES);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(kind::DROP);
        (*ev).netns = netns;
        (*ev).ifindex = ifindex;
        (*ev).reason = reason;
        (*ev)._pad = 0;
        (*ev).location = location;
        skb_flow(a, skb, &mut (*ev).flow);
    }
    submit(entry);
}
