//! TCP retransmits and resets: who retransmits to whom, per pod, and the handshake-timeout
//! pattern of SYNs sent again and again to one destination.

pub mod decode;
pub mod findings;

pub use decode::{TcpEventKind, TcpSample};

use crate::{
    btf::ArgKind,
    hooks::{FunctionArgs, Hook, Target, Tracepoint, Variant},
    tiers::Tier,
};

const SOCK: ArgKind = ArgKind::StructPtr("sock");
const SKB: ArgKind = ArgKind::StructPtr("sk_buff");

pub const TRACEPOINTS: &[&Tracepoint] = &[
    &Tracepoint {
        category: "tcp",
        name: "tcp_retransmit_skb",
        btf_args: &[SOCK, SKB],
        fields: &["skaddr", "skbaddr"],
        programs: [Some("tcp_retrans_tp_btf"), Some("tcp_retrans_raw_tp"), Some("tcp_retrans_tp")],
        slot: |l| &mut l.tcp_retransmit_skb,
    },
    OTHERS[0],
    OTHERS[1],
    OTHERS[2],
];

/// The tracepoints no function hook replaces.
const OTHERS: [&Tracepoint; 3] = [
    &Tracepoint {
        category: "tcp",
        name: "tcp_retransmit_synack",
        btf_args: &[SOCK, ArgKind::StructPtr("request_sock")],
        fields: &["skaddr", "req"],
        programs: [Some("tcp_synack_tp_btf"), Some("tcp_synack_raw_tp"), Some("tcp_synack_tp")],
        slot: |l| &mut l.tcp_retransmit_synack,
    },
    &Tracepoint {
        category: "tcp",
        name: "tcp_send_reset",
        btf_args: &[SOCK, SKB],
        fields: &["skaddr", "skbaddr"],
        programs: [Some("tcp_rst_tx_tp_btf"), Some("tcp_rst_tx_raw_tp"), Some("tcp_rst_tx_tp")],
        slot: |l| &mut l.tcp_send_reset,
    },
    &Tracepoint {
        category: "tcp",
        name: "tcp_receive_reset",
        btf_args: &[SOCK],
        fields: &["skaddr"],
        programs: [Some("tcp_rst_rx_tp_btf"), Some("tcp_rst_rx_raw_tp"), Some("tcp_rst_rx_tp")],
        slot: |l| &mut l.tcp_receive_reset,
    },
];

const TCP_RETRANSMIT_SKB: &[&str] = &["__tcp_retransmit_skb"];

pub const FUNCTIONS: &[&FunctionArgs] = &[&FunctionArgs {
    name: "__tcp_retransmit_skb",
    args: &[SOCK, SKB],
    slot: |l| &mut l.tcp_retransmit_fn,
}];

/// __tcp_retransmit_skb's return, in place of its tracepoint: the same retransmits (those that
/// returned 0, as the tracepoint fires only for those). Not tcp_retransmit_skb: tail loss
/// probes call __tcp_retransmit_skb directly, and were missed (one per run in the guests).
/// No kprobe tier yet: a kprobe/kretprobe pair on tcp_retransmit_skb came up 2 of 148 short
/// on 5.10, from that same path or from returns missed past the kretprobe's maxactive (which
/// aya cannot raise through the perf PMU); it was not retried on __tcp_retransmit_skb.
pub fn function_variants() -> Vec<Variant> {
    let mut hooks = vec![Hook {
        program: "tcp_retrans_fexit",
        target: Target::Function { candidates: TCP_RETRANSMIT_SKB, exit: true },
    }];
    for tp in OTHERS {
        hooks.extend(tp.hook(Tier::Fentry));
    }
    vec![Variant { tier: Tier::Fentry, hooks }]
}

pub const COUNTS_MAP: &str = "TCP_COUNTS";
