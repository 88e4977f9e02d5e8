//! net:netif_receive_skb into per-CPU time bins per interface of the watched netns. Per
//! packet: the device's netns and ifindex, one clock read, one bin increment. Userspace reads
//! the finished bins on a timer.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, PerCpuArray},
};
use netprobe_common::bursts::{BurstConfig, IfaceBins, RING, SLOTS};

use crate::kernel::{arg, net_inum, offset, read, tracepoint_tiers, LAYOUT};

#[map]
static BURST_BINS: PerCpuArray<IfaceBins> = PerCpuArray::with_max_entries(SLOTS, 0);

#[map]
static BURST_CONFIG: Array<BurstConfig> = Array::with_max_entries(1, 0);

tracepoint_tiers!("net" / "netif_receive_skb" => on_receive:
    bursts_rx_tp_btf, bursts_rx_raw_tp, bursts_rx_tp);

/// Argument order in the layout: (skb).
const SKB: usize = 0;

#[inline(always)]
fn on_receive(ctx: u64, variant: usize) {
    let Some(cfg) = BURST_CONFIG.get(0) else { return };
    if cfg.bin_ns == 0 {
        return;
    }
    let skb: u64 = arg(ctx, &LAYOUT.netif_receive_skb[variant], SKB);
    let dev: u64 = read(skb, offset!(skb_dev));
    if dev == 0 || net_inum(read(dev, offset!(net_device_nd_net))) != cfg.netns {
        return;
    }
    let ifindex: u32 = read(dev, offset!(net_device_ifindex));
    let len: u32 = read(skb, offset!(skb_len));
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
