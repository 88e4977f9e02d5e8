//! skb:kfree_skb: why packets were dropped, where in the kernel, and in which pod.

pub mod decode;
pub mod findings;
pub mod json;
pub mod metrics;
pub mod report;
pub mod sites;
pub mod snapshot;
pub mod timeline;

pub use decode::DropSample;

use crate::{btf::ArgKind, hooks::Tracepoint};

pub const TRACEPOINTS: &[&Tracepoint] = &[&Tracepoint {
    category: "skb",
    name: "kfree_skb",
    // Kernels before 5.17 have no reason: their drops are told apart by location (sites.rs).
    btf_args: &[
        ArgKind::StructPtr("sk_buff"),
        ArgKind::VoidPtr,
        ArgKind::Optional(&ArgKind::Enum("skb_drop_reason")),
        // 6.11 on: the receiving socket. TCP drops skb->dev once the segment reaches the
        // socket, so a drop there (TCP_OLD_SEQUENCE) is that socket's pod.
        ArgKind::Optional(&ArgKind::StructPtr("sock")),
    ],
    fields: &["skbaddr", "location", "reason", "rx_sk"],
    programs: [Some("drops_tp_btf"), Some("drops_raw_tp"), Some("drops_tp")],
    slot: |l| &mut l.kfree_skb,
}];

pub const COUNTS_MAP: &str = "DROP_COUNTS";
