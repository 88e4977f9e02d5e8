//! net:netif_receive_skb and net:net_dev_start_xmit into per-CPU time bins per interface and
//! direction of the watched netns. Per packet: the device's netns and ifindex, the slot's
//! config, one clock read, one bin increment, and a compare with the threshold. A bin that
//! goes over it opens or extends this CPU's burst; the burst's one summary record goes out
//! when this CPU's next packet there falls past the bin after its last one over.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::map,
    maps::{Array, PerCpuArray},
};
use netprobe_common::{
    bursts::{Burst, BurstConfig, BurstRecord, IfaceBins, DIRECTIONS, PROBES, RING, RX, SLOTS, TX},
    event::kind,
    layout::Args,
    stats,
};

use crate::kernel::{
    bump, header, net_inum, offset, submit, tp_arg, tracepoint_tiers, Access, LAYOUT, SAMPLES,
};

#[map]
static BURST_BINS: PerCpuArray<IfaceBins> = PerCpuArray::with_max_entries(DIRECTIONS * SLOTS, 0);

#[map]
static BURST_CONFIG: Array<BurstConfig> = Array::with_max_entries(DIRECTIONS * SLOTS, 0);

tracepoint_tiers!("net" / "netif_receive_skb" => on_receive:
    bursts_rx_tp_btf, bursts_rx_raw_tp, bursts_rx_tp);
tracepoint_tiers!("net" / "net_dev_start_xmit" => on_transmit:
    bursts_tx_tp_btf, bursts_tx_raw_tp, bursts_tx_tp);

/// Argument order in both layouts: (skb).
const SKB: usize = 0;

#[inline(always)]
fn on_receive(ctx: u64, variant: usize) {
    if let Some(dev) = device_of(ctx, &LAYOUT.netif_receive_skb, variant) {
        count(RX, dev);
    }
}

#[inline(always)]
fn on_transmit(ctx: u64, variant: usize) {
    if let Some(dev) = device_of(ctx, &LAYOUT.net_dev_start_xmit, variant) {
        count(TX, dev);
    }
}

/// The skb's device's netns and ifindex, and the packet's length.
#[inline(always)]
fn device_of(ctx: u64, layout: &[Args; 2], variant: usize) -> Option<(u32, u32, u32)> {
    let a = Access::of(variant);
    let skb = tp_arg(ctx, layout, variant, SKB);
    let dev: u64 = a.load(skb, offset!(skb_dev));
    if dev == 0 {
        return None;
    }
    let netns = net_inum(a, a.load(dev, offset!(net_device_nd_net)));
    Some((netns, a.load(dev, offset!(net_device_ifindex)), a.load(skb, offset!(skb_len))))
}

#[inline(always)]
fn count(direction: u32, (netns, ifindex, len): (u32, u32, u32)) {
    let Some((index, cfg)) = config_of(direction, ifindex) else { return };
    // The netns check keeps out the same ifindex in another netns; the bin_ns one spares the
    // division its panic branch, which the verifier would refuse.
    if cfg.netns != netns || cfg.bin_ns == 0 {
        return;
    }
    let Some(slot) = BURST_BINS.get_ptr_mut(index) else { return };
    let slot = unsafe { &mut *slot };
    let id = (unsafe { bpf_ktime_get_ns() } / cfg.bin_ns as u64) as u32;
    let bin = &mut slot.bins[id as usize % RING];
    if bin.id != id {
        bin.id = id;
        bin.packets = 0;
        bin.bytes = 0;
    }
    bin.packets += 1;
    bin.bytes += len as u64;
    let (packets, bytes) = (bin.packets, bin.bytes);
    let open = &mut slot.open;
    if open.bins != 0 {
        let last = open.first_bin.wrapping_add(open.bins - 1);
        if id == last {
            open.packets += 1;
            open.bytes += len as u64;
            open.peak_packets = open.peak_packets.max(packets);
            return;
        }
        if id.wrapping_sub(last) > 1 {
            close(open);
        }
    }
    if packets < cfg.packets && bytes < cfg.bytes {
        return;
    }
    // The bin just went over: all of it joins the burst, opened here if none is.
    if open.bins == 0 {
        *open = Burst { first_bin: id, ifindex, direction, ..Burst::default() };
        let before = id.wrapping_sub(1);
        let prev = &slot.bins[before as usize % RING];
        if prev.id == before && prev.packets >= cfg.edge_packets {
            (open.first_bin, open.bins) = (before, 1);
            (open.packets, open.bytes, open.peak_packets) =
                (prev.packets as u64, prev.bytes, prev.packets);
        }
    }
    open.bins += 1;
    open.packets += packets as u64;
    open.bytes += bytes;
    open.peak_packets = open.peak_packets.max(packets);
}

/// The slot of `ifindex` in `direction`: the first of its probes that holds it, none after
/// an empty one.
#[inline(always)]
fn config_of(direction: u32, ifindex: u32) -> Option<(u32, &'static BurstConfig)> {
    for probe in 0..PROBES {
        let index = direction * SLOTS + ifindex.wrapping_add(probe) % SLOTS;
        let cfg = BURST_CONFIG.get(index)?;
        if cfg.ifindex == ifindex {
            return Some((index, cfg));
        }
        if cfg.ifindex == 0 {
            return None;
        }
    }
    None
}

/// Sends the burst's summary and clears it.
#[inline(always)]
fn close(open: &mut Burst) {
    match SAMPLES.reserve::<BurstRecord>(0) {
        Some(mut entry) => {
            let r = entry.as_mut_ptr();
            unsafe {
                (*r).header = header(kind::BURST);
                (*r).burst = *open;
            }
            submit(entry);
        }
        None => bump(stats::LOST_SAMPLES),
    }
    open.bins = 0;
}
