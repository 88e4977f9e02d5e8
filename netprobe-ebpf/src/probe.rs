//! Programs loaded only by `doctor` and tier selection, to ask the kernel what it allows.

use aya_ebpf::{macros::fentry, programs::FEntryContext};

#[fentry(function = "net_rx_action")]
pub fn probe_fentry(_ctx: FEntryContext) -> i32 {
    0
}
