//! connect() and bind() failing with EADDRNOTAVAIL (no free ephemeral port, or a 4-tuple
//! already in use) or EADDRINUSE. The sockaddr is kept from syscall entry to exit, per thread.
//! Syscalls, not packets: a hash map update per call is affordable here.

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_user_buf},
    macros::{map, tracepoint},
    maps::{LruHashMap, PerCpuHashMap},
    programs::TracePointContext,
    EbpfContext,
};
use netprobe_common::{
    event::{kind as record, Flow, AF_INET, AF_INET6},
    layout::{port_range, Args, CLASSIC},
    ports::{op, PendingCall, PortEvent, PortKey},
    stats,
};

use crate::kernel::{
    arg, bump, count, current_net, header, load_offset, net_inum, offset, read, wanted, LAYOUT,
    SAMPLES,
};

#[map]
static PORT_COUNTS: PerCpuHashMap<PortKey, u64> = PerCpuHashMap::with_max_entries(4096, 0);

/// Calls in flight, by thread. LRU: a thread killed mid-call must not leak its entry.
#[map]
static PENDING: LruHashMap<u64, PendingCall> = LruHashMap::with_max_entries(16384, 0);

// Per-syscall events exist only as classic tracepoints.
#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn ports_enter_connect(ctx: TracePointContext) -> u32 {
    enter(ctx.as_ptr() as u64, &LAYOUT.sys_enter_connect[CLASSIC], op::CONNECT);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn ports_exit_connect(ctx: TracePointContext) -> u32 {
    exit(ctx.as_ptr() as u64, &LAYOUT.sys_exit_connect[CLASSIC]);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_bind")]
pub fn ports_enter_bind(ctx: TracePointContext) -> u32 {
    enter(ctx.as_ptr() as u64, &LAYOUT.sys_enter_bind[CLASSIC], op::BIND);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_bind")]
pub fn ports_exit_bind(ctx: TracePointContext) -> u32 {
    exit(ctx.as_ptr() as u64, &LAYOUT.sys_exit_bind[CLASSIC]);
    0
}

/// Argument order in the layout: (sockaddr, addrlen, fd) at entry, (ret) at exit.
const ADDR: usize = 0;
const LEN: usize = 1;
const FD: usize = 2;
const RET: usize = 0;

#[inline(always)]
fn enter(ctx: u64, args: &Args, op: u32) {
    let user_addr: u64 = arg(ctx, args, ADDR);
    let len: u64 = arg(ctx, args, LEN);
    let fd: u64 = arg(ctx, args, FD);
    let mut call = PendingCall { op, len: len as u32, addr: [0; 28], fd: fd as u32 };
    if unsafe { bpf_probe_read_user_buf(user_addr as *const u8, &mut call.addr[..16]) }.is_err() {
        return;
    }
    // sockaddr_in6 is 28 bytes; a shorter sockaddr may end before that.
    let _ = unsafe { bpf_probe_read_user_buf((user_addr + 16) as *const u8, &mut call.addr[16..]) };
    let _ = PENDING.insert(&bpf_get_current_pid_tgid(), &call, 0);
}

#[inline(always)]
fn exit(ctx: u64, args: &Args) {
    let id = bpf_get_current_pid_tgid();
    let Some(call) = (unsafe { PENDING.get(&id) }).copied() else { return };
    let _ = PENDING.remove(&id);
    let ret: i64 = arg(ctx, args, RET);
    let errno = (-ret) as u64;
    if errno != load_offset(&raw const LAYOUT.eaddrnotavail)
        && errno != load_offset(&raw const LAYOUT.eaddrinuse)
    {
        return;
    }
    let net = current_net();
    let netns = net_inum(net);
    count(&PORT_COUNTS, &PortKey { netns, op: call.op, errno: errno as u32 }, 1);
    if !wanted(netns) {
        return;
    }
    let Some(mut entry) = SAMPLES.reserve::<PortEvent>(0) else {
        bump(stats::LOST_SAMPLES);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(record::PORT);
        (*ev).netns = netns;
        (*ev).op = call.op;
        (*ev).errno = errno as u32;
        (*ev).pid = id as u32;
        (*ev).tgid = (id >> 32) as u32;
        (*ev).comm = bpf_get_current_comm().unwrap_or_default();
        (*ev)._pad = 0;
        sockaddr_flow(&call, &mut (*ev).flow);
        // Read now: the range may be changed, and the netns gone, before userspace looks.
        ((*ev).port_lo, (*ev).port_hi) = local_port_range(net);
        (*ev).bound_family = 0;
        (*ev).bound_port = 0;
        (*ev).bound_addr = [0; 16];
        let sk = fd_sock(call.fd);
        if sk != 0 {
            (*ev).bound_family = read(sk, offset!(sk_family));
            (*ev).bound_port = read(sk, offset!(sk_num));
            (*ev).bound_addr = if (*ev).bound_family == AF_INET6 {
                read(sk, offset!(sk_v6_rcv_saddr))
            } else {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&read::<[u8; 4]>(sk, offset!(sk_rcv_saddr)));
                a
            };
        }
    }
    entry.submit(BPF_RB_NO_WAKEUP as u64);
}

/// The netns's `ip_local_port_range`, in whichever shape this kernel keeps it; (0, 0) unknown.
#[inline(always)]
fn local_port_range(net: u64) -> (u16, u16) {
    if net == 0 {
        return (0, 0);
    }
    let off = offset!(net_port_range);
    match load_offset(&raw const LAYOUT.port_range_shape) as u32 {
        port_range::PACKED_U32 => {
            let r: u32 = read(net, off);
            (r as u16, (r >> 16) as u16)
        }
        port_range::INT_PAIR => {
            let r: [i32; 2] = read(net, off);
            (r[0] as u16, r[1] as u16)
        }
        _ => (0, 0),
    }
}

/// The `struct sock` behind the calling task's `fd`, 0 when it is not a socket (any more).
#[inline(always)]
fn fd_sock(fd: u32) -> u64 {
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() };
    let files: u64 = read(task, offset!(task_files));
    if files == 0 {
        return 0;
    }
    let fdt: u64 = read(files, offset!(files_fdt));
    if fdt == 0 || fd >= read::<u32>(fdt, offset!(fdtable_max_fds)) {
        return 0;
    }
    let fds: u64 = read(fdt, offset!(fdtable_fd));
    let file: u64 = read(fds, fd as u64 * 8);
    if file == 0 {
        return 0;
    }
    let socket: u64 = read(file, offset!(file_private_data));
    // Only a socket's file is its socket's file: anything else the fd now names fails this.
    if socket == 0 || read::<u64>(socket, offset!(socket_file)) != file {
        return 0;
    }
    read(socket, offset!(socket_sk))
}

/// A sockaddr_in/_in6 as a flow: the peer for connect(), our own address for bind().
#[inline(always)]
fn sockaddr_flow(call: &PendingCall, flow: &mut Flow) {
    *flow = Flow::default();
    let a = &call.addr;
    let family = u16::from_ne_bytes([a[0], a[1]]);
    let port = u16::from_be_bytes([a[2], a[3]]);
    let mut addr = [0u8; 16];
    match family {
        AF_INET => addr[..4].copy_from_slice(&a[4..8]),
        AF_INET6 => addr.copy_from_slice(&a[8..24]),
        _ => return,
    }
    // The socket type is not known at the syscall; proto stays 0 (unknown).
    flow.family = family;
    if call.op == op::CONNECT {
        flow.daddr = addr;
        flow.dport = port;
    } else {
        flow.saddr = addr;
        flow.sport = port;
    }
}
