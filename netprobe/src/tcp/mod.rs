//! TCP retransmits and resets: who retransmits to whom, per pod, and the handshake-timeout
//! pattern of SYNs sent again and again to one destination.

pub mod decode;

use std::collections::BTreeMap;

use aya::maps::{MapData, PerCpuHashMap};
use netprobe_common::tcp::TcpKey;

pub use decode::TcpSample;

use crate::{btf::ArgKind, error::Error, hooks::Tracepoint};

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

pub const COUNTS_MAP: &str = "TCP_COUNTS";

/// Exact counts so far, by (netns, kind); retransmit kinds in segments.
pub fn counts(map: &PerCpuHashMap<MapData, TcpKey, u64>) -> Result<BTreeMap<TcpKey, u64>, Error> {
    let mut out = BTreeMap::new();
    for entry in map.iter() {
        let (key, per_cpu) = entry?;
        out.insert(key, per_cpu.iter().sum());
    }
    Ok(out)
}
