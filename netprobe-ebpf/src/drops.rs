//! skb:kfree_skb. Every drop bumps its exact (netns, reason) count; a sample goes to the ring
//! buffer for the pods being watched. Three entry points, one per tier, share one body.

use aya_ebpf::{macros::map, maps::PerCpuHashMap};
use netprobe_common::{
    drops::{DropEvent, DropKey},
    event::kind,
    stats,
};

use crate::kernel::{
    arg, args_of, bump, count, header, optional_arg, sk_netns, skb_flow, skb_netns, submit,
    tracepoint_tiers, wanted, LAYOUT, SAMPLES,
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
    let args = args_of(&LAYOUT.kfree_skb, variant);
    let skb: u64 = arg(ctx, args, SKB);
    let reason: u32 = optional_arg(ctx, args, REASON);
    let location: u64 = arg(ctx, args, LOCATION);
    let (mut netns, ifindex) = skb_netns(skb);
    if netns == 0 {
        netns = sk_netns(optional_arg(ctx, args, RX_SK));
    }
    count(&DROP_COUNTS, &DropKey { netns, reason, location }, 1);
    if !wanted(netns) {
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
        skb_flow(skb, &mut (*ev).flow);
    }
    submit(entry);
}
