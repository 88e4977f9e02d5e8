//! TCP retransmits and resets: who retransmits to whom, per pod, and the handshake-timeout
//! pattern of SYNs sent again and again to one destination.

pub mod decode;
pub mod findings;
pub mod metrics;
pub mod patterns;
pub mod report;
pub mod snapshot;
pub mod timeline;

pub use decode::{TcpEventKind, TcpSample};

use crate::{
    btf::ArgKind,
    hooks::{self, Exit, Function, Tracepoint, Variant},
};

const SOCK: ArgKind = ArgKind::StructPtr("sock");
const SKB: ArgKind = ArgKind::StructPtr("sk_buff");

pub const TRACEPOINTS: &[&Tracepoint] = &[
    &Tracepoint {
        category: "tcp",
        name: "tcp_retransmit_skb",
        // Since 6.10 the tracepoint fires for failed attempts too, with their error; the
        // kernel counts only the ones that went out (TcpRetransSegs), and so does netprobe.
        btf_args: &[SOCK, SKB, ArgKind::Optional(&ArgKind::Int(0))],
        fields: &["skaddr", "skbaddr", "err"],
        programs: [Some("tcp_retrans_tp_btf"), Some("tcp_retrans_raw_tp"), Some("tcp_retrans_tp")],
        slot: |l| &mut l.tcp_retransmit_skb,
    },
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

const TCP_RETRANSMIT_SKB: &str = "tcp_retransmit_skb";

pub const FUNCTIONS: &[&Function] = &[&Function {
    name: TCP_RETRANSMIT_SKB,
    module: None,
    args: &[SOCK, SKB],
    slot: |l| &mut l.tcp_retransmit_fn,
}];

/// The tracepoints as at their own tiers, and tcp_retransmit_skb's return for the attempts
/// that failed. The retransmits sent stay with the tracepoint: tcp_retransmit_skb misses the
/// tail loss probes, which call __tcp_retransmit_skb directly, and __tcp_retransmit_skb is
/// inlined into it on 6.1 (its out-of-line copy serves only those probes). Failed probes are
/// missed for the same reason (TCPRetransFail counts them on kernels that count failures in
/// __tcp_retransmit_skb).
pub fn function_variants() -> Vec<Variant> {
    let exit = Exit {
        candidates: &[TCP_RETRANSMIT_SKB],
        fexit: Some("tcp_retrans_fexit"),
        kprobe: "tcp_retrans_kprobe",
        kretprobe: "tcp_retrans_kretprobe",
    };
    hooks::exit_variants(&[exit], TRACEPOINTS)
}

pub const COUNTS_MAP: &str = "TCP_COUNTS";
