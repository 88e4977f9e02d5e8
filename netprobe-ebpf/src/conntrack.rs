//! printk:console, for the kernel's rate-limited "nf_conntrack: table full in netns N" line.
//! Console output is rare, so every message is passed on and userspace picks the ones it
//! knows; a flood of them costs lost samples, never counts.

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP, helpers::bpf_probe_read_kernel_buf, macros::tracepoint,
    programs::TracePointContext, EbpfContext,
};
use netprobe_common::{conntrack::ConsoleEvent, event::kind, layout::CLASSIC, stats};

use crate::kernel::{arg, bump, header, LAYOUT, SAMPLES};

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
    entry.submit(BPF_RB_NO_WAKEUP as u64);
}
