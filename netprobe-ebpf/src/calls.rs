//! A kretprobe sees only the return value: the arguments it needs are kept at the kprobe, per
//! task and function, as a stack, since an interrupt may run the same function on top of a
//! call in progress (and always returns first). A task keeps its stack when it moves between
//! CPUs. Map entries, not an array indexed by depth: older verifiers lose the index's bound.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_smp_processor_id},
    macros::map,
    maps::LruHashMap,
};

/// The functions whose kretprobes need their arguments.
pub mod function {
    pub const TCP_RETRANSMIT_SKB: u32 = 1;
    pub const INET_HASH_CONNECT: u32 = 2;
    pub const INET_CSK_BIND_CONFLICT: u32 = 3;
    pub const NF_CONNTRACK_ALLOC: u32 = 4;
    pub const NF_CONNTRACK_CONFIRM: u32 = 5;
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Key {
    task: u64,
    function: u32,
    /// The nesting depth of the call; `DEPTH_OF` for the depth itself.
    depth: u32,
}

const DEPTH_OF: u32 = u32::MAX;

/// Arguments of calls in progress, and each task's depth in each function. LRU: a task that
/// exits mid-call must not leak its entries.
#[map]
static CALLS: LruHashMap<Key, [u64; 2]> = LruHashMap::with_max_entries(16384, 0);

/// The calling task; the idle tasks, pid 0 on every CPU, by their CPU.
#[inline(always)]
fn task() -> u64 {
    let id = bpf_get_current_pid_tgid();
    if id as u32 == 0 {
        (1 << 63) | unsafe { bpf_get_smp_processor_id() } as u64
    } else {
        id
    }
}

/// At the kprobe: keeps `args` for the return.
#[inline(always)]
pub fn enter(function: u32, args: [u64; 2]) {
    let mut key = Key { task: task(), function, depth: DEPTH_OF };
    let depth = unsafe { CALLS.get(&key) }.map_or(0, |d| d[0]);
    let _ = CALLS.insert(&key, &[depth + 1, 0], 0);
    key.depth = depth as u32;
    let _ = CALLS.insert(&key, &args, 0);
}

/// At the kretprobe: the arguments its call was entered with; None for a call entered before
/// netprobe attached.
#[inline(always)]
pub fn exit(function: u32) -> Option<[u64; 2]> {
    let mut key = Key { task: task(), function, depth: DEPTH_OF };
    let depth = unsafe { CALLS.get(&key) }?[0];
    if depth == 0 {
        return None;
    }
    let _ = CALLS.insert(&key, &[depth - 1, 0], 0);
    key.depth = (depth - 1) as u32;
    let args = unsafe { CALLS.get(&key) }.copied();
    let _ = CALLS.remove(&key);
    args
}
