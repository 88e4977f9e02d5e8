//! Packets of pods' sockets to and from link-local services, and DNS to the cluster DNS IPs,
//! at cgroup_skb egress and ingress on the root cgroup v2: once per packet at the socket,
//! not per device it crosses, and only for packets that have a local socket. A packet that
//! is neither costs a bounds check, the version nibble, two compares on the remote address
//! and, for UDP/TCP port 53 only, one hash lookup. The programs always pass the packet.

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::bpf_skb_load_bytes,
    macros::{cgroup_skb, map},
    maps::{HashMap, PerCpuHashMap},
    programs::SkBuffContext,
};
use netprobe_common::linklocal::{target, LinkLocalKey, MAX_DNS_IPS, OUT};

use crate::kernel::{count, offset, read, sk_netns, skb_netns, Access};

#[map]
static LINKLOCAL_COUNTS: PerCpuHashMap<LinkLocalKey, u64> =
    PerCpuHashMap::with_max_entries(4096, 0);

/// The cluster DNS service IPs (`--dns-ip`), IPv4 in the first 4 bytes; written by userspace.
#[map]
static DNS_IPS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(MAX_DNS_IPS, 0);

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
/// fd00:ec2::/64, the IPv6 link-local services of EC2.
const EC2_V6: [u8; 8] = [0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0];

#[cgroup_skb(egress)]
pub fn linklocal_egress(ctx: SkBuffContext) -> i32 {
    on_packet(ctx.skb.skb, OUT);
    1
}

#[cgroup_skb(ingress)]
pub fn linklocal_ingress(ctx: SkBuffContext) -> i32 {
    on_packet(ctx.skb.skb, netprobe_common::linklocal::IN);
    1
}

/// Counts the packet if its remote end is link-local or a cluster DNS IP. At both hooks the
/// packet's data starts at its IP header.
#[inline(always)]
fn on_packet(skb: *mut __sk_buff, direction: u8) {
    let (data, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    // The smallest IPv4 header; IPv6 checks for its own.
    if data + 20 > end {
        return;
    }
    let h = data as *const u8;
    let first = unsafe { *h };
    let mut key = LinkLocalKey { direction, ..LinkLocalKey::default() };
    let ports_at = match first >> 4 {
        4 => {
            // Source and destination, read together at a constant offset.
            let addrs: [u8; 8] = unsafe { core::ptr::read_unaligned(h.add(12) as *const _) };
            let remote = if direction == OUT { 4 } else { 0 };
            key.addr[..4].copy_from_slice(&addrs[remote..remote + 4]);
            key.version = 4;
            key.proto = unsafe { *h.add(9) };
            let frag = u16::from_be_bytes(unsafe { [*h.add(6), *h.add(7)] }) & 0x1fff;
            if frag != 0 {
                None
            } else {
                Some((first & 0x0f) as u32 * 4)
            }
        }
        6 => {
            if data + 40 > end {
                return;
            }
            let at = if direction == OUT { 24 } else { 8 };
            key.addr = unsafe { core::ptr::read_unaligned(h.add(at) as *const _) };
            key.version = 6;
            key.proto = unsafe { *h.add(6) };
            // Extension headers are not followed: their packets count without a port.
            Some(40)
        }
        _ => return,
    };
    let link_local = if key.version == 4 {
        key.addr[0] == 169 && key.addr[1] == 254
    } else {
        key.addr[..8] == EC2_V6
    };
    if key.proto == IPPROTO_TCP || key.proto == IPPROTO_UDP {
        if let Some(at) = ports_at {
            key.port = remote_port(skb, data, end, at, direction);
        }
    }
    key.target = if link_local {
        target::LINK_LOCAL
    } else if key.port == DNS_PORT && unsafe { DNS_IPS.get(&key.addr) }.is_some() {
        target::CLUSTER_DNS
    } else {
        return;
    };
    key.netns = netns(skb as u64);
    count(&LINKLOCAL_COUNTS, &key, 1);
}

/// The remote end's port: read in place when the transport header is in the linear data at
/// `at` (IPv4 without options, IPv6), else copied out with bpf_skb_load_bytes.
#[inline(always)]
fn remote_port(skb: *mut __sk_buff, data: usize, end: usize, at: u32, direction: u8) -> u16 {
    let mut ports = [0u8; 4];
    if (at == 20 && data + 24 <= end) || (at == 40 && data + 44 <= end) {
        let p = data as *const u8;
        let p = if at == 20 { unsafe { p.add(20) } } else { unsafe { p.add(40) } };
        ports = unsafe { core::ptr::read_unaligned(p as *const _) };
    } else {
        let rc =
            unsafe { bpf_skb_load_bytes(skb as *const _, at, ports.as_mut_ptr() as *mut _, 4) };
        if rc != 0 {
            return 0;
        }
    }
    let (sport, dport) = ([ports[0], ports[1]], [ports[2], ports[3]]);
    u16::from_be_bytes(if direction == OUT { dport } else { sport })
}

/// The pod: the netns of the packet's socket. The context of a cgroup_skb program is the
/// kernel's `struct sk_buff` itself, so its fields are read at the offsets BTF gives.
#[inline(always)]
fn netns(skb: u64) -> u32 {
    match sk_netns(Access::Helper, read(skb, offset!(skb_sk))) {
        0 => skb_netns(Access::Helper, skb).0,
        n => n,
    }
}
