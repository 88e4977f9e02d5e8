//! skb:kfree_skb. Every drop bumps its exact (netns, reason) count; a sample goes to the ring
//! buffer for the pods being watched. Three entry points, one per tier, share one body.

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{PerCpuHashMap, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use netprobe_common::{
    drops::{DropEvent, DropKey, ETH_P_IP, ETH_P_IPV6},
    event::{kind, EventHeader},
    layout::Filter,
    stats,
};

use crate::kernel::{bump, net_inum, offset, read};

#[map]
static DROP_COUNTS: PerCpuHashMap<DropKey, u64> = PerCpuHashMap::with_max_entries(16384, 0);

#[map]
static SAMPLES: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

#[no_mangle]
static FILTER: Filter = Filter { netns: 0, _pad: 0 };

#[btf_tracepoint(function = "kfree_skb")]
pub fn drops_tp_btf(ctx: BtfTracePointContext) -> i32 {
    on_kfree_skb(ctx.as_ptr() as u64);
    0
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn drops_raw_tp(ctx: RawTracePointContext) -> i32 {
    on_kfree_skb(ctx.as_ptr() as u64);
    0
}

#[tracepoint(category = "skb", name = "kfree_skb")]
pub fn drops_tp(ctx: TracePointContext) -> u32 {
    on_kfree_skb(ctx.as_ptr() as u64);
    0
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// skb header offsets are u16; this means "not set".
const HEADER_UNSET: u16 = 0xffff;

#[inline(always)]
fn on_kfree_skb(ctx: u64) {
    let skb: u64 = read(ctx, offset!(kfree_skb_skb));
    let reason: u32 = read(ctx, offset!(kfree_skb_reason));
    // The device first: drops before socket lookup (closed port, netfilter, backlog) have no
    // socket, and the receiving device's netns is the pod the packet was meant for.
    let dev: u64 = read(skb, offset!(skb_dev));
    let mut netns = 0;
    let mut ifindex = 0;
    if dev != 0 {
        netns = net_inum(read(dev, offset!(net_device_nd_net)));
        ifindex = read(dev, offset!(net_device_ifindex));
    }
    if netns == 0 {
        let sk: u64 = read(skb, offset!(skb_sk));
        if sk != 0 {
            netns = net_inum(read(sk, offset!(sock_net)));
        }
    }
    count(DropKey { netns, reason });

    let want = unsafe { core::ptr::read_volatile(&raw const FILTER.netns) };
    if want != 0 && want != netns {
        return;
    }
    let Some(mut entry) = SAMPLES.reserve::<DropEvent>(0) else {
        bump(stats::LOST_SAMPLES);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = EventHeader {
            kind: kind::DROP,
            _pad: 0,
            cpu: bpf_get_smp_processor_id(),
            ts_ns: bpf_ktime_get_ns(),
        };
        (*ev).netns = netns;
        (*ev).ifindex = ifindex;
        (*ev).reason = reason;
        (*ev).location = read(ctx, offset!(kfree_skb_location));
        parse_headers(skb, &mut *ev);
    }
    // The reader drains on a timer; waking it per drop would cost a context switch each.
    entry.submit(BPF_RB_NO_WAKEUP as u64);
}

#[inline(always)]
fn count(key: DropKey) {
    if let Some(n) = DROP_COUNTS.get_ptr_mut(&key) {
        unsafe { *n += 1 };
    } else if DROP_COUNTS.insert(&key, &1, 0).is_err() {
        bump(stats::DROP_KEYS_FULL);
    }
}

/// Fills the L3/L4 fields when the packet is IPv4 or IPv6; leaves zeros otherwise.
#[inline(always)]
fn parse_headers(skb: u64, ev: &mut DropEvent) {
    ev.l3_proto = 0;
    ev.l4_proto = 0;
    ev._pad = 0;
    ev._pad2 = 0;
    ev.saddr = [0; 16];
    ev.daddr = [0; 16];
    ev.sport = 0;
    ev.dport = 0;

    let head: u64 = read(skb, offset!(skb_head));
    let nh: u16 = read(skb, offset!(skb_network_header));
    if head == 0 || nh == HEADER_UNSET {
        return;
    }
    let l3 = head + nh as u64;
    // The IP version nibble rather than skb->protocol: locally generated packets may not have
    // the protocol set yet where they are dropped.
    let first: u8 = read(l3, 0);
    let l4 = match first >> 4 {
        4 => {
            ev.l3_proto = ETH_P_IP;
            ev.l4_proto = read(l3, 9);
            let addrs: [u8; 8] = read(l3, 12);
            ev.saddr[..4].copy_from_slice(&addrs[..4]);
            ev.daddr[..4].copy_from_slice(&addrs[4..]);
            l3 + ((first & 0x0f) as u64) * 4
        }
        6 => {
            ev.l3_proto = ETH_P_IPV6;
            ev.l4_proto = read(l3, 6);
            ev.saddr = read(l3, 8);
            ev.daddr = read(l3, 24);
            l3 + 40
        }
        _ => return,
    };
    if ev.l4_proto == IPPROTO_TCP || ev.l4_proto == IPPROTO_UDP {
        let ports: [u8; 4] = read(l4, 0);
        ev.sport = u16::from_be_bytes([ports[0], ports[1]]);
        ev.dport = u16::from_be_bytes([ports[2], ports[3]]);
    }
}
