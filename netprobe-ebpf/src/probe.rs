//! Programs loaded only by `doctor`, to ask the kernel whether a tier loads and attaches.

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};

#[fentry(function = "net_rx_action")]
pub fn probe_fentry(_ctx: FEntryContext) -> i32 {
    0
}

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}
