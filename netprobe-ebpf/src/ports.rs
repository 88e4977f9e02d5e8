//! connect() and bind() failing with EADDRNOTAVAIL (no free ephemeral port, or a 4-tuple
//! already in use) or EADDRINUSE. The sockaddr is kept from syscall entry to exit, per thread.
//! Syscalls, not packets: a hash map update per call is affordable here. At the function
//! tiers connect()'s EADDRNOTAVAIL is seen where the kernel finds it, at the return of
//! __inet_hash_connect, instead of at every connect() syscall; and a bind() in progress whose
//! port inet_csk_bind_conflict finds taken learns the socket holding it.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_user_buf},
    macros::{fexit, kprobe, kretprobe, map, tracepoint},
    maps::{LruHashMap, PerCpuHashMap},
    programs::{FExitContext, ProbeContext, RetProbeContext, TracePointContext},
    EbpfContext,
};
use netprobe_common::{
    event::{kind as record, Flow, AF_INET, AF_INET6},
    layout::{port_range, Args, CLASSIC, FENTRY, KPROBE, NO_ARG, RET},
    ports::{op, Holder, PendingCall, PortEvent, PortKey},
    stats,
};

use crate::{
    calls::{self, function},
    kernel::{
        arg, bump, count, current_net, header, load_offset, net_inum, offset, read, sk_flow,
        submit, wanted, Access, LAYOUT, SAMPLES,
    },
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

#[fexit(function = "__inet_hash_connect")]
pub fn ports_hash_connect_fexit(ctx: FExitContext) -> i32 {
    let (ctx, args) = (ctx.as_ptr() as u64, &LAYOUT.inet_hash_connect_fn[FENTRY]);
    hash_connect_returned(arg(ctx, args, SOCK), arg::<u64>(ctx, args, RET) as i32);
    0
}

#[kprobe]
pub fn ports_hash_connect_kprobe(ctx: ProbeContext) -> u32 {
    let sk = arg(ctx.as_ptr() as u64, &LAYOUT.inet_hash_connect_fn[KPROBE], SOCK);
    calls::enter(function::INET_HASH_CONNECT, [sk, 0]);
    0
}

#[kretprobe]
pub fn ports_hash_connect_kretprobe(ctx: RetProbeContext) -> u32 {
    if let Some([sk, _]) = calls::exit(function::INET_HASH_CONNECT) {
        let ret: u64 = arg(ctx.as_ptr() as u64, &LAYOUT.inet_hash_connect_fn[KPROBE], RET);
        hash_connect_returned(sk, ret as i32);
    }
    0
}

#[fexit(function = "inet_csk_bind_conflict")]
pub fn ports_bind_conflict_fexit(ctx: FExitContext) -> i32 {
    let (ctx, args) = (ctx.as_ptr() as u64, &LAYOUT.bind_conflict_fn[FENTRY]);
    let tb2 = optional_fn_arg(ctx, args, TB2);
    conflict_returned(arg(ctx, args, TB), tb2, arg(ctx, args, RET));
    0
}

#[kprobe]
pub fn ports_bind_conflict_kprobe(ctx: ProbeContext) -> u32 {
    let (ctx, args) = (ctx.as_ptr() as u64, &LAYOUT.bind_conflict_fn[KPROBE]);
    calls::enter(
        function::INET_CSK_BIND_CONFLICT,
        [arg(ctx, args, TB), optional_fn_arg(ctx, args, TB2)],
    );
    0
}

#[kretprobe]
pub fn ports_bind_conflict_kretprobe(ctx: RetProbeContext) -> u32 {
    if let Some([tb, tb2]) = calls::exit(function::INET_CSK_BIND_CONFLICT) {
        let ret = arg(ctx.as_ptr() as u64, &LAYOUT.bind_conflict_fn[KPROBE], RET);
        conflict_returned(tb, tb2, ret);
    }
    0
}

/// Argument orders in the layout: (sockaddr, addrlen, fd) at syscall entry, (ret) at exit;
/// (sk) of __inet_hash_connect; (tb, tb2) of inet_csk_bind_conflict (tb2 since 6.1).
const ADDR: usize = 0;
const LEN: usize = 1;
const FD: usize = 2;
const SYS_RET: usize = 0;
const SOCK: usize = 0;
const TB: usize = 0;
const TB2: usize = 1;

/// A function argument some kernels lack: 0 there.
#[inline(always)]
fn optional_fn_arg(ctx: u64, args: &Args, i: usize) -> u64 {
    if load_offset(&raw const args.off[i]) == NO_ARG as u64 {
        0
    } else {
        arg(ctx, args, i)
    }
}

/// The conflict check found the port taken: the bind() in progress learns who holds it. The
/// check returns int before 6.x and bool since: only the low byte is defined for both.
#[inline(always)]
fn conflict_returned(tb: u64, tb2: u64, ret: u64) {
    if ret as u8 == 0 {
        return;
    }
    let Some(call) = PENDING.get_ptr_mut(&bpf_get_current_pid_tgid()) else { return };
    let sk = port_holder(tb, tb2);
    if sk == 0 {
        return;
    }
    let h = unsafe { &mut (*call).holder };
    h.family = read(sk, offset!(sk_family));
    h.port = read(sk, offset!(sk_num));
    h.state = read::<u8>(sk, offset!(sk_state)) as u32;
    h.addr = sk_addr(sk, h.family);
}

/// The first socket bound to the bucket's port: from the port's bucket where it lists them,
/// else from the address's bucket (tb2), or the port's first one.
#[inline(always)]
fn port_holder(tb: u64, tb2: u64) -> u64 {
    let no = NO_ARG as u64;
    if offset!(tb_owners) != no && offset!(sk_bind_node) != no {
        let first: u64 = read(tb, offset!(tb_owners));
        return if first == 0 { 0 } else { first - offset!(sk_bind_node) };
    }
    if offset!(tb2_owners) == no || offset!(sk_bind2_node) == no {
        return 0;
    }
    let tb2 = if tb2 != 0 || offset!(tb_bhash2) == no || offset!(tb2_bhash_node) == no {
        tb2
    } else {
        let node: u64 = read(tb, offset!(tb_bhash2));
        if node == 0 {
            return 0;
        }
        node - offset!(tb2_bhash_node)
    };
    if tb2 == 0 {
        return 0;
    }
    let first: u64 = read(tb2, offset!(tb2_owners));
    if first == 0 {
        0
    } else {
        first - offset!(sk_bind2_node)
    }
}

/// A socket's own address, IPv4 in the first four bytes.
#[inline(always)]
fn sk_addr(sk: u64, family: u16) -> [u8; 16] {
    if family == AF_INET6 {
        read(sk, offset!(sk_v6_rcv_saddr))
    } else {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&read::<[u8; 4]>(sk, offset!(sk_rcv_saddr)));
        a
    }
}

/// No ephemeral port was free, or the bound port's 4-tuple was taken: the socket has its
/// destination set and, if it was bound, its port.
#[inline(always)]
fn hash_connect_returned(sk: u64, ret: i32) {
    let errno = (-ret) as u64;
    if ret >= 0 || errno != load_offset(&raw const LAYOUT.eaddrnotavail) {
        return;
    }
    let none = Holder { family: 0, port: 0, state: 0, addr: [0; 16] };
    failed(read(sk, offset!(sk_net)), op::CONNECT, errno, sk, none, |flow| sk_flow(sk, flow));
}

#[inline(always)]
fn enter(ctx: u64, args: &Args, op: u32) {
    let user_addr: u64 = arg(ctx, args, ADDR);
    let len: u64 = arg(ctx, args, LEN);
    let fd: u64 = arg(ctx, args, FD);
    let mut call = PendingCall {
        op,
        len: len as u32,
        addr: [0; 28],
        fd: fd as u32,
        holder: Holder { family: 0, port: 0, state: 0, addr: [0; 16] },
    };
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
    let ret: i64 = arg(ctx, args, SYS_RET);
    let errno = (-ret) as u64;
    if errno != load_offset(&raw const LAYOUT.eaddrnotavail)
        && errno != load_offset(&raw const LAYOUT.eaddrinuse)
    {
        return;
    }
    let holder = call.holder;
    failed(current_net(), call.op, errno, fd_sock(call.fd), holder, |flow| {
        sockaddr_flow(&call, flow)
    });
}

/// Counts a failed call of `op` in `net`, and samples it with the socket `sk` (0: unknown)
/// and the flow `flow` fills in.
#[inline(always)]
fn failed(net: u64, op: u32, errno: u64, sk: u64, holder: Holder, flow: impl FnOnce(&mut Flow)) {
    let id = bpf_get_current_pid_tgid();
    let netns = net_inum(Access::Helper, net);
    count(&PORT_COUNTS, &PortKey { netns, op, errno: errno as u32 }, 1);
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
        (*ev).op = op;
        (*ev).errno = errno as u32;
        (*ev).pid = id as u32;
        (*ev).tgid = (id >> 32) as u32;
        (*ev).comm = bpf_get_current_comm().unwrap_or_default();
        (*ev)._pad = 0;
        flow(&mut (*ev).flow);
        // Read now: the range may be changed, and the netns gone, before userspace looks.
        ((*ev).port_lo, (*ev).port_hi) = local_port_range(net);
        (*ev).bound_family = 0;
        (*ev).bound_port = 0;
        (*ev).bound_addr = [0; 16];
        if sk != 0 {
            (*ev).bound_family = read(sk, offset!(sk_family));
            (*ev).bound_port = read(sk, offset!(sk_num));
            (*ev).bound_addr = sk_addr(sk, (*ev).bound_family);
        }
        (*ev).holder = holder;
    }
    submit(entry);
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
