//! printk:console, for the kernel's rate-limited "nf_conntrack: table full in netns N" line.
//! Console output is rare, so every message is passed on and userspace picks the ones it
//! knows; a flood of them costs lost samples, never counts. At the kprobe tier (nf_conntrack
//! is a module, which fentry cannot reach here) the kernel's own outcomes are counted per
//! netns at the returns of its functions, with no rate limit and no netns left unnamed:
//! allocations failed (__nf_conntrack_alloc) and inserts failed (__nf_conntrack_confirm).

use aya_ebpf::{
    helpers::bpf_probe_read_kernel_buf,
    macros::{kprobe, kretprobe, map, tracepoint},
    maps::PerCpuHashMap,
    programs::{ProbeContext, RetProbeContext, TracePointContext},
    EbpfContext,
};
use netprobe_common::{
    conntrack::{kind as ct, ConsoleEvent, CtKey},
    event::kind,
    layout::{CLASSIC, KPROBE, RET},
    stats,
};

use crate::{
    calls::{self, function},
    kernel::{arg, bump, count, header, net_inum, skb_netns, submit, Access, LAYOUT, SAMPLES},
};

#[map]
static CT_COUNTS: PerCpuHashMap<CtKey, u64> = PerCpuHashMap::with_max_entries(4096, 0);

/// Argument order in the layout: (net) of __nf_conntrack_alloc.
const NET: usize = 0;

/// The largest errno an ERR_PTR encodes.
const MAX_ERRNO: u64 = 4095;

#[kprobe]
pub fn conntrack_alloc_kprobe(ctx: ProbeContext) -> u32 {
    let net = arg(ctx.as_ptr() as u64, &LAYOUT.ct_alloc_fn[KPROBE], NET);
    calls::enter(function::NF_CONNTRACK_ALLOC, [net, 0]);
    0
}

#[kretprobe]
pub fn conntrack_alloc_kretprobe(ctx: RetProbeContext) -> u32 {
    let Some([net, _]) = calls::exit(function::NF_CONNTRACK_ALLOC) else { return 0 };
    let ret: u64 = arg(ctx.as_ptr() as u64, &LAYOUT.ct_alloc_fn[KPROBE], RET);
    // An ERR_PTR: -ENOMEM, the table full with nothing to evict (or, rarely, no memory).
    if ret >= MAX_ERRNO.wrapping_neg() {
        count(
            &CT_COUNTS,
            &CtKey { netns: net_inum(Access::Helper, net), kind: ct::ALLOC_FAILED },
            1,
        );
    }
    0
}

/// Argument order in the layout: (skb) of __nf_conntrack_confirm.
const SKB: usize = 0;

/// __nf_conntrack_confirm's verdict when the insert failed (every other outcome accepts).
const NF_DROP: u32 = 0;

#[kprobe]
pub fn conntrack_confirm_kprobe(ctx: ProbeContext) -> u32 {
    let skb: u64 = arg(ctx.as_ptr() as u64, &LAYOUT.ct_confirm_fn[KPROBE], SKB);
    // The device's netns: the one whose table the entry was for, at POSTROUTING (the output
    // device) or at LOCAL_IN (the input device).
    calls::enter(function::NF_CONNTRACK_CONFIRM, [skb_netns(Access::Helper, skb).0 as u64, 0]);
    0
}

#[kretprobe]
pub fn conntrack_confirm_kretprobe(ctx: RetProbeContext) -> u32 {
    let Some([netns, _]) = calls::exit(function::NF_CONNTRACK_CONFIRM) else { return 0 };
    let verdict: u32 = arg(ctx.as_ptr() as u64, &LAYOUT.ct_confirm_fn[KPROBE], RET);
    if verdict == NF_DROP {
        count(&CT_COUNTS, &CtKey { netns: netns as u32, kind: ct::CONFIRM_FAILED }, 1);
    }
    0
}

#[tracepoint(category = "printk", name = "console")]
pub fn conntrack_console(ctx: TracePointContext) -> u32 {
    on_console(ctx.as_ptr() as u64);
    0
}

/// Argument order in the layout: the message's __data_loc word.
const MSG: usize = 0;

#[inline(always)]
fn on_console(ctx: u64) {
    // __data_loc: offset from the record start in the low 16 bits, length in the high 16.
    let loc: u32 = arg(ctx, &LAYOUT.printk_console[CLASSIC], MSG);
    let (off, len) = ((loc & 0xffff) as u64, (loc >> 16) as usize);
    let Some(mut entry) = SAMPLES.reserve::<ConsoleEvent>(0) else {
        bump(stats::LOST_SAMPLES);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(kind::CONSOLE);
        (*ev).msg = [0; 128];
        let n = if len < 128 { len } else { 128 };
        (*ev).len = n as u32;
        (*ev)._pad = 0;
        let msg = &mut (*ev).msg;
        let _ = bpf_probe_read_kernel_buf((ctx + off) as *const u8, &mut msg[..n & 127]);
    }
    submit(entry);
}
