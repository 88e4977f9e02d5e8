//! TCP retransmits (data, SYN, SYN-ACK) and resets sent and received. Counts are exact per
//! (netns, kind), in segments for retransmits as TcpRetransSegs counts them; every event is
//! also sampled, since retransmits are exceptions, not the per-packet path.

use aya_ebpf::{bindings::BPF_RB_NO_WAKEUP, macros::map, maps::PerCpuHashMap};
use netprobe_common::{
    event::{kind as record, Flow},
    stats,
    tcp::{kind, TcpEvent, TcpKey},
};

use crate::kernel::{
    arg, args_of, bump, count, header, offset, read, sk_flow, sk_netns, skb_flow, skb_netns,
    tracepoint_tiers, wanted, LAYOUT, SAMPLES,
};

#[map]
static TCP_COUNTS: PerCpuHashMap<TcpKey, u64> = PerCpuHashMap::with_max_entries(4096, 0);

tracepoint_tiers!("tcp" / "tcp_retransmit_skb" => on_retransmit:
    tcp_retrans_tp_btf, tcp_retrans_raw_tp, tcp_retrans_tp);
tracepoint_tiers!("tcp" / "tcp_retransmit_synack" => on_retransmit_synack:
    tcp_synack_tp_btf, tcp_synack_raw_tp, tcp_synack_tp);
tracepoint_tiers!("tcp" / "tcp_send_reset" => on_send_reset:
    tcp_rst_tx_tp_btf, tcp_rst_tx_raw_tp, tcp_rst_tx_tp);
tracepoint_tiers!("tcp" / "tcp_receive_reset" => on_receive_reset:
    tcp_rst_rx_tp_btf, tcp_rst_rx_raw_tp, tcp_rst_rx_tp);

/// Argument order in the layout: (sk, skb) or (sk, req).
const SK: usize = 0;
const SECOND: usize = 1;

#[inline(always)]
fn on_retransmit(ctx: u64, variant: usize) {
    let args = args_of(&LAYOUT.tcp_retransmit_skb, variant);
    let sk: u64 = arg(ctx, args, SK);
    let skb: u64 = arg(ctx, args, SECOND);
    let state: u8 = read(sk, offset!(sk_state));
    let syn_sent = offset!(tcp_syn_sent) as u8;
    let kind = if state == syn_sent { kind::RETRANS_SYN } else { kind::RETRANS_DATA };
    let segs: u16 = read(skb, offset!(skb_tcp_gso_segs));
    emit(sk_netns(sk), kind, state as u32, segs.max(1) as u32, |flow| sk_flow(sk, flow));
}

#[inline(always)]
fn on_retransmit_synack(ctx: u64, variant: usize) {
    let args = args_of(&LAYOUT.tcp_retransmit_synack, variant);
    let listener: u64 = arg(ctx, args, SK);
    let req: u64 = arg(ctx, args, SECOND);
    // A request sock begins with a sock_common, so the socket offsets fit it too.
    let state: u8 = read(req, offset!(sk_state));
    emit(sk_netns(listener), kind::RETRANS_SYNACK, state as u32, 1, |flow| sk_flow(req, flow));
}

#[inline(always)]
fn on_send_reset(ctx: u64, variant: usize) {
    let args = args_of(&LAYOUT.tcp_send_reset, variant);
    let sk: u64 = arg(ctx, args, SK);
    if sk != 0 {
        let state: u8 = read(sk, offset!(sk_state));
        emit(sk_netns(sk), kind::RST_SENT, state as u32, 1, |flow| sk_flow(sk, flow));
        return;
    }
    // No socket: the reply to a packet for a closed port. Its flow, turned around, is ours.
    let skb: u64 = arg(ctx, args, SECOND);
    emit(skb_netns(skb).0, kind::RST_SENT, 0, 1, |flow| {
        skb_flow(skb, flow);
        core::mem::swap(&mut flow.saddr, &mut flow.daddr);
        core::mem::swap(&mut flow.sport, &mut flow.dport);
    });
}

#[inline(always)]
fn on_receive_reset(ctx: u64, variant: usize) {
    let sk: u64 = arg(ctx, args_of(&LAYOUT.tcp_receive_reset, variant), SK);
    let state: u8 = read(sk, offset!(sk_state));
    emit(sk_netns(sk), kind::RST_RECEIVED, state as u32, 1, |flow| sk_flow(sk, flow));
}

#[inline(always)]
fn emit(netns: u32, kind: u32, state: u32, segs: u32, flow: impl FnOnce(&mut Flow)) {
    count(&TCP_COUNTS, &TcpKey { netns, kind }, segs as u64);
    if !wanted(netns) {
        return;
    }
    let Some(mut entry) = SAMPLES.reserve::<TcpEvent>(0) else {
        bump(stats::LOST_SAMPLES);
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(record::TCP);
        (*ev).netns = netns;
        (*ev).kind = kind;
        (*ev).state = state;
        (*ev).segs = segs;
        flow(&mut (*ev).flow);
    }
    entry.submit(BPF_RB_NO_WAKEUP as u64);
}
