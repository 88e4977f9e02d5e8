//! net:netif_receive_skb into per-CPU time bins per interface of the watched netns. Per
//! packet: the device's netns and ifindex, one clock read, one bin increment. Userspace reads
//! the finished bins on a timer.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, PerCpuArray},
};
use netprobe_common::bursts::{BurstConfig, IfaceBins, RING, SLOTS};

use netprobe_common::layout::BTF;

use crate::kernel::{
    arg, args_of, btf_arg, field, net_inum, offset, read, tracepoint_tiers, LAYOUT, TYPED,
};

#[map]
static BURST_BINS: PerCpuArray<IfaceBins> = PerCpuArray::with_max_entries(SLOTS, 0);

#[map]
static BURST_CONFIG: Array<BurstConfig> = Array::with_max_entries(1, 0);

tracepoint_tiers!("net" / "netif_receive_skb" => on_receive:
    bursts_rx_tp_btf, bursts_rx_raw_tp, bursts_rx_tp);

/// Argument order in the layout: (skb).
const SKB: usize = 0;

/// The receiving device's netns and ifindex, and the packet's length. tp_btf loads fields
/// directly (a few ns each); the other tiers read them with helpers.
#[inline(always)]
fn device_of(ctx: u64, variant: usize) -> Option<(u32, u32, u32)> {
    if variant == TYPED {
        let skb = btf_arg(ctx, &LAYOUT.netif_receive_skb[BTF], SKB);
        let dev: u64 = field(skb, offset!(skb_dev));
        if dev == 0 {
            return None;
        }
        let net: u64 = field(dev, offset!(net_device_nd_net));
        let netns: u32 = if net == 0 { 0 } else { field(net, offset!(net_ns_inum)) };
        return Some((
            netns,
            field(dev, offset!(net_device_ifindex)),
            field(skb, offset!(skb_len)),
        ));
    }
    let skb: u64 = arg(ctx, args_of(&LAYOUT.netif_receive_skb, variant), SKB);
    let dev: u64 = read(skb, offset!(skb_dev));
    if dev == 0 {
        return None;
    }
    let netns = net_inum(read(dev, offset!(net_device_nd_net)));
    Some((netns, read(dev, offset!(net_device_ifindex)), read(skb, offset!(skb_len))))
}

#[inline(always)]
fn on_receive(ctx: u64, variant: usize) {
    let Some(cfg) = BURST_CONFIG.get(0) else { return };
    if cfg.bin_ns == 0 {
        return;
    }
    let Some((dev_netns, ifindex, len)) = device_of(ctx, variant) else { return };
    if dev_netns != cfg.netns {
        return;
    }
    let Some(slot) = BURST_BINS.get_ptr_mut(ifindex % SLOTS) else { return };
    let id = (unsafe { bpf_ktime_get_ns() } / cfg.bin_ns as u64) as u32;
    let bin = unsafe { &mut (*slot).bins[id as usize % RING] };
    if bin.id != id {
        bin.id = id;
        bin.packets = 0;
        bin.bytes = 0;
    }
    bin.packets += 1;
    bin.bytes += len as u64;
}
