//! What every hook family shares: kernel reads at offsets the loader resolved from the
//! running kernel, the sample ring buffer, the agent's own counters, and flow parsing.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::map,
    maps::{ring_buf::RingBufEntry, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use netprobe_common::{
    event::{EventHeader, Flow, AF_INET, AF_INET6},
    layout::{Args, Filter, KernelLayout, BTF, CLASSIC, MAX_SELECTED, NO_ARG},
    stats,
};

/// Filled in by the loader (`EbpfLoader::set_global`); the zeros here are never used.
#[no_mangle]
pub static LAYOUT: KernelLayout = KernelLayout {
    skb_dev: 0,
    skb_sk: 0,
    skb_head: 0,
    skb_network_header: 0,
    skb_len: 0,
    skb_tcp_gso_segs: 0,
    net_device_nd_net: 0,
    net_device_ifindex: 0,
    net_ns_inum: 0,
    sk_net: 0,
    sk_family: 0,
    sk_state: 0,
    sk_daddr: 0,
    sk_rcv_saddr: 0,
    sk_dport: 0,
    sk_num: 0,
    sk_v6_daddr: 0,
    sk_v6_rcv_saddr: 0,
    tcp_syn_sent: 0,
    tcp_rcv_tstamp: 0,
    tcp_lrcvtime: 0,
    tcp_lsndtime: 0,
    hz: 0,
    task_nsproxy: 0,
    nsproxy_net_ns: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_private_data: 0,
    socket_file: 0,
    socket_sk: 0,
    net_port_range: 0,
    port_range_shape: 0,
    eaddrinuse: 0,
    eaddrnotavail: 0,
    net_rx_softirq: 0,
    napi_poll: 0,
    sd_backlog: 0,
    sd_time_squeeze: 0,
    process_backlog: 0,
    kfree_skb: [NO_ARGS; 2],
    tcp_retransmit_skb: [NO_ARGS; 2],
    tcp_retransmit_synack: [NO_ARGS; 2],
    tcp_send_reset: [NO_ARGS; 2],
    tcp_receive_reset: [NO_ARGS; 2],
    sys_enter_connect: [NO_ARGS; 2],
    sys_exit_connect: [NO_ARGS; 2],
    sys_enter_bind: [NO_ARGS; 2],
    sys_exit_bind: [NO_ARGS; 2],
    printk_console: [NO_ARGS; 2],
    softirq_entry: [NO_ARGS; 2],
    softirq_exit: [NO_ARGS; 2],
    napi_poll_args: [NO_ARGS; 2],
    netif_receive_skb: [NO_ARGS; 2],
    net_dev_start_xmit: [NO_ARGS; 2],
    tcp_retransmit_fn: [NO_ARGS; 2],
    inet_hash_connect_fn: [NO_ARGS; 2],
    ct_alloc_fn: [NO_ARGS; 2],
    ct_confirm_fn: [NO_ARGS; 2],
    bind_conflict_fn: [NO_ARGS; 2],
    tb_owners: 0,
    sk_bind_node: 0,
    tb_bhash2: 0,
    tb2_bhash_node: 0,
    tb2_owners: 0,
    sk_bind2_node: 0,
};
const NO_ARGS: Args = Args { off: [0; 4] };

#[no_mangle]
static FILTER: Filter = Filter { by_selection: 0, drop_samples: 0 };

/// The netns whose samples are wanted, when FILTER.by_selection is set (`--pod`, `-n`, `-l`).
#[map]
pub static SELECTED: HashMap<u32, u8> = HashMap::with_max_entries(MAX_SELECTED, 0);

#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::LEN, 0);

/// Samples of every family, in one buffer so that userspace sees one timeline.
#[map]
pub static SAMPLES: RingBuf = RingBuf::with_byte_size(SAMPLES_BYTES, 0);
const SAMPLES_BYTES: u32 = 1 << 22;
/// Samples waiting that wake the reader: it drains on a timer, up to a second apart, and a
/// flood must not fill the ring first. Below that no sample wakes it: a wakeup per sample
/// would cost a context switch each.
const WAKE_AT: u64 = SAMPLES_BYTES as u64 / 4;

/// Hands a sample to the reader, waking it once a quarter of the ring is waiting.
#[inline(always)]
pub fn submit<T>(entry: RingBufEntry<T>) {
    let waiting = SAMPLES.query(BPF_RB_AVAIL_DATA as u64);
    let flags = if waiting >= WAKE_AT { BPF_RB_FORCE_WAKEUP } else { BPF_RB_NO_WAKEUP };
    entry.submit(flags as u64);
}

/// One layout field. Volatile, so the compiler cannot fold in the zero placeholder; the
/// verifier then sees the frozen .rodata value as a constant.
macro_rules! offset {
    ($($path:tt)+) => {
        $crate::kernel::load_offset(&raw const $crate::kernel::LAYOUT.$($path)+)
    };
}
pub(crate) use offset;

#[inline(always)]
pub fn load_offset(field: *const u32) -> u64 {
    unsafe { core::ptr::read_volatile(field) as u64 }
}

pub fn bump(index: u32) {
    if let Some(v) = STATS.get_ptr_mut(index) {
        // Per-CPU slot, and tracing programs do not nest on one CPU: no atomic needed.
        unsafe { *v += 1 };
    }
}

/// Adds `n` to the exact per-CPU counter of `key`.
#[inline(always)]
pub fn count<K>(map: &PerCpuHashMap<K, u64>, key: &K, n: u64) {
    if let Some(v) = map.get_ptr_mut(key) {
        unsafe { *v += n };
    } else if map.insert(key, &n, 0).is_err() {
        bump(stats::COUNTER_MAP_FULL);
    }
}

/// True when drops are sampled at all (a frozen constant: the verifier drops the sampling
/// code when they are not).
#[inline(always)]
pub fn drop_samples() -> bool {
    let on = unsafe { core::ptr::read_volatile(&raw const FILTER.drop_samples) };
    on != 0
}

/// True when samples of this netns are wanted (`--pod`, `-n`, `-l`).
#[inline(always)]
pub fn wanted(netns: u32) -> bool {
    let by_selection = unsafe { core::ptr::read_volatile(&raw const FILTER.by_selection) };
    by_selection == 0 || unsafe { SELECTED.get(&netns) }.is_some()
}

pub fn header(kind: u16) -> EventHeader {
    EventHeader {
        kind,
        _pad: 0,
        cpu: unsafe { bpf_get_smp_processor_id() },
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// How a program reaches kernel memory: tp_btf programs load fields of BTF-typed pointers
/// directly, which the verifier checks against the kernel's BTF and guards against faults
/// (a few ns each); every other program type calls a helper per read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Typed,
    Helper,
}

impl Access {
    /// The access of a [`tracepoint_tiers`] variant.
    #[inline(always)]
    pub fn of(variant: usize) -> Self {
        if variant == TYPED {
            Self::Typed
        } else {
            Self::Helper
        }
    }

    /// A `T` at `base + off`, `base` a kernel pointer (BTF-typed under `Typed`).
    #[inline(always)]
    pub fn load<T: Copy + Default>(self, base: u64, off: u64) -> T {
        match self {
            Self::Typed => field(base, off),
            Self::Helper => read(base, off),
        }
    }
}

/// Reads a `T` at `base + off`; a failed read counts as a read error and yields `T::default()`.
#[inline(always)]
pub fn read<T: Default>(base: u64, off: u64) -> T {
    match unsafe { bpf_probe_read_kernel((base + off) as *const T) } {
        Ok(v) => v,
        Err(_) => {
            bump(stats::READ_ERRORS);
            T::default()
        }
    }
}

/// Argument `i` of a tracepoint whose context offsets are `args`.
#[inline(always)]
pub fn arg<T: Default>(ctx: u64, args: &Args, i: usize) -> T {
    read(ctx, load_offset(&raw const args.off[i]))
}

/// Argument `i`, or `T::default()` where this kernel's tracepoint lacks it (`NO_ARG`). The
/// offset is a frozen constant, so the verifier keeps only the branch taken.
#[inline(always)]
pub fn optional_arg<T: Default>(ctx: u64, args: &Args, i: usize) -> T {
    if load_offset(&raw const args.off[i]) == NO_ARG as u64 {
        T::default()
    } else {
        arg(ctx, args, i)
    }
}

/// Inode of a `struct net *`, 0 for NULL.
#[inline(always)]
pub fn net_inum(a: Access, net: u64) -> u32 {
    if net == 0 {
        0
    } else {
        a.load::<u32>(net, offset!(net_ns_inum))
    }
}

/// The calling task's `struct net *`, 0 when it has none (exiting).
#[inline(always)]
pub fn current_net() -> u64 {
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() };
    let nsproxy: u64 = read(task, offset!(task_nsproxy));
    if nsproxy == 0 {
        return 0;
    }
    read(nsproxy, offset!(nsproxy_net_ns))
}

/// Netns of a socket (or request sock), 0 for NULL.
#[inline(always)]
pub fn sk_netns(a: Access, sk: u64) -> u32 {
    if sk == 0 {
        0
    } else {
        net_inum(a, a.load(sk, offset!(sk_net)))
    }
}

/// The flow of a socket, local end as source.
#[inline(always)]
pub fn sk_flow(sk: u64, flow: &mut Flow) {
    *flow = Flow::default();
    flow.proto = IPPROTO_TCP;
    flow.family = read(sk, offset!(sk_family));
    flow.sport = read(sk, offset!(sk_num));
    flow.dport = u16::from_be(read(sk, offset!(sk_dport)));
    if flow.family == AF_INET6 {
        flow.saddr = read(sk, offset!(sk_v6_rcv_saddr));
        flow.daddr = read(sk, offset!(sk_v6_daddr));
    } else {
        let s: [u8; 4] = read(sk, offset!(sk_rcv_saddr));
        let d: [u8; 4] = read(sk, offset!(sk_daddr));
        flow.saddr[..4].copy_from_slice(&s);
        flow.daddr[..4].copy_from_slice(&d);
    }
}

pub const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// skb header offsets are u16; this means "not set".
const HEADER_UNSET: u16 = 0xffff;

/// The flow of an skb's IPv4 or IPv6 header, as the packet has it; zeros when not IP.
/// Returns where its transport header starts, 0 when not IP. The packet's bytes are read
/// with a helper under any access (BTF types them as plain bytes), the IP header in one or two.
#[inline(always)]
pub fn skb_flow(a: Access, skb: u64, flow: &mut Flow) -> u64 {
    *flow = Flow::default();
    let head: u64 = a.load(skb, offset!(skb_head));
    let nh: u16 = a.load(skb, offset!(skb_network_header));
    if head == 0 || nh == HEADER_UNSET {
        return 0;
    }
    let l3 = head + nh as u64;
    // The IP version nibble rather than skb->protocol: locally generated packets may not have
    // the protocol set yet where they are dropped. An IPv4 header's 20 bytes, or the start of
    // an IPv6 one.
    let ip: [u8; 20] = read(l3, 0);
    let l4 = match ip[0] >> 4 {
        4 => {
            flow.family = AF_INET;
            flow.proto = ip[9];
            flow.saddr[..4].copy_from_slice(&ip[12..16]);
            flow.daddr[..4].copy_from_slice(&ip[16..20]);
            l3 + ((ip[0] & 0x0f) as u64) * 4
        }
        6 => {
            let addrs: [u8; 32] = read(l3, 8);
            flow.family = AF_INET6;
            flow.proto = ip[6];
            flow.saddr.copy_from_slice(&addrs[..16]);
            flow.daddr.copy_from_slice(&addrs[16..]);
            l3 + 40
        }
        _ => return 0,
    };
    if flow.proto == IPPROTO_TCP || flow.proto == IPPROTO_UDP {
        let ports: [u8; 4] = read(l4, 0);
        flow.sport = u16::from_be_bytes([ports[0], ports[1]]);
        flow.dport = u16::from_be_bytes([ports[2], ports[3]]);
    }
    l4
}

/// Netns and ifindex of an skb: the device first, since drops before socket lookup (closed
/// port, netfilter, backlog) have no socket, and the receiving device's netns is the pod the
/// packet was meant for; then the socket.
#[inline(always)]
pub fn skb_netns(a: Access, skb: u64) -> (u32, u32) {
    let dev: u64 = a.load(skb, offset!(skb_dev));
    if dev != 0 {
        let netns = net_inum(a, a.load(dev, offset!(net_device_nd_net)));
        if netns != 0 {
            return (netns, a.load(dev, offset!(net_device_ifindex)));
        }
    }
    (sk_netns(a, a.load(skb, offset!(skb_sk))), 0)
}

/// How an entry point sees its tracepoint: tp_btf (arguments in 8-byte slots, typed by BTF,
/// so fields behind them may be loaded directly), raw tracepoint (the same slots, untyped),
/// classic (the format file's record).
pub const TYPED: usize = 0;
pub const RAW: usize = 2;

/// The argument offsets of `variant` in a tracepoint's layout entry.
#[inline(always)]
pub fn args_of(layout: &[Args; 2], variant: usize) -> &Args {
    &layout[if variant == CLASSIC { CLASSIC } else { BTF }]
}

/// The three tracepoint-tier entry points of one tracepoint, all calling `$body(ctx, variant)`
/// with `variant` one of `TYPED`, `RAW`, `CLASSIC`.
macro_rules! tracepoint_tiers {
    ($category:tt / $name:tt => $body:path : $btf:ident, $raw:ident, $classic:ident) => {
        #[aya_ebpf::macros::btf_tracepoint(function = $name)]
        pub fn $btf(ctx: aya_ebpf::programs::BtfTracePointContext) -> i32 {
            $body(aya_ebpf::EbpfContext::as_ptr(&ctx) as u64, $crate::kernel::TYPED);
            0
        }

        #[aya_ebpf::macros::raw_tracepoint(tracepoint = $name)]
        pub fn $raw(ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
            $body(aya_ebpf::EbpfContext::as_ptr(&ctx) as u64, $crate::kernel::RAW);
            0
        }

        #[aya_ebpf::macros::tracepoint(category = $category, name = $name)]
        pub fn $classic(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $body(aya_ebpf::EbpfContext::as_ptr(&ctx) as u64, netprobe_common::layout::CLASSIC);
            0
        }
    };
}
pub(crate) use tracepoint_tiers;

/// Argument `i` of a BTF-typed tracepoint, loaded straight from the context. The context may
/// only be read at constant offsets: the offset is a frozen .rodata constant the verifier
/// knows, and each arm is one fixed load of which it keeps only the one taken. The loads are
/// assembly, since LLVM otherwise may merge the arms into one load from a computed address,
/// which the verifier refuses. The value keeps its BTF type, so fields behind it can be
/// loaded with [`field`].
#[inline(always)]
pub fn btf_arg(ctx: u64, args: &Args, i: usize) -> u64 {
    macro_rules! slot {
        ($off:literal) => {{
            let v: u64;
            unsafe {
                core::arch::asm!(
                    concat!("{v} = *(u64 *)({ctx} + ", $off, ")"),
                    ctx = in(reg) ctx,
                    v = lateout(reg) v,
                    options(readonly, nostack, preserves_flags)
                )
            };
            v
        }};
    }
    match load_offset(&raw const args.off[i]) {
        0 => slot!(0),
        8 => slot!(8),
        16 => slot!(16),
        24 => slot!(24),
        32 => slot!(32),
        _ => 0,
    }
}

/// Argument `i` as a u64: loaded directly on tp_btf, read with a helper otherwise.
#[inline(always)]
pub fn tp_arg(ctx: u64, layout: &[Args; 2], variant: usize, i: usize) -> u64 {
    if variant == TYPED {
        btf_arg(ctx, &layout[BTF], i)
    } else {
        arg(ctx, args_of(layout, variant), i)
    }
}

/// Argument `i` as a u64 like [`tp_arg`], or 0 where this kernel's tracepoint lacks it.
#[inline(always)]
pub fn tp_optional_arg(ctx: u64, layout: &[Args; 2], variant: usize, i: usize) -> u64 {
    if variant == TYPED {
        // An absent argument's offset (NO_ARG) loads 0.
        btf_arg(ctx, &layout[BTF], i)
    } else {
        optional_arg(ctx, args_of(layout, variant), i)
    }
}

/// A field of a BTF-typed kernel pointer (from [`btf_arg`], or a field of one): a plain
/// load, which the verifier checks against the kernel's BTF and guards against faults.
/// Programs that use it load only at the tp_btf tier; a layout it rejects makes the tier
/// fail and the family fall back to one that reads with helpers.
#[inline(always)]
pub fn field<T: Copy>(base: u64, off: u64) -> T {
    unsafe { core::ptr::read_volatile((base + off) as *const T) }
}
