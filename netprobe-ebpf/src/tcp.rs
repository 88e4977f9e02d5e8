//! TCP retransmits (data, SYN, SYN-ACK) and resets sent and received. Counts are exact per
//! (netns, kind), in segments for retransmits as TcpRetransSegs counts them; every event is
//! also sampled, since retransmits are exceptions, not the per-packet path. At the function
//! tiers the return of tcp_retransmit_skb adds the attempts that failed, by what it returned,
//! which no tracepoint before 6.10 shows; the retransmits sent still come from the tracepoint.

use aya_ebpf::{
    helpers::bpf_jiffies64,
    macros::{fexit, kprobe, kretprobe, map},
    maps::PerCpuHashMap,
    programs::{FExitContext, ProbeContext, RetProbeContext},
    EbpfContext,
};
use netprobe_common::{
    event::kind as record,
    layout::{FENTRY, KPROBE, RET},
    stats,
    tcp::{kind, TcpEvent, TcpKey, NO_TIME},
};

use crate::{
    calls::{self, function},
    kernel::{
        arg, args_of, bump, count, header, offset, optional_arg, read, sk_flow, sk_netns, skb_flow,
        skb_netns, submit, tracepoint_tiers, wanted, Access, IPPROTO_TCP, LAYOUT, SAMPLES,
    },
};

/// TCP's programs read with helpers at every tier: its hooks fire per retransmit or reset,
/// not per packet.
const H: Access = Access::Helper;

#[map]
static TCP_COUNTS: PerCpuHashMap<TcpKey, u64> = PerCpuHashMap::with_max_entries(4096, 0);

#[fexit(function = "tcp_retransmit_skb")]
pub fn tcp_retrans_fexit(ctx: FExitContext) -> i32 {
    let (ctx, args) = (ctx.as_ptr() as u64, &LAYOUT.tcp_retransmit_fn[FENTRY]);
    retransmit_returned(arg(ctx, args, SK), arg(ctx, args, SECOND), arg::<u64>(ctx, args, RET));
    0
}

#[kprobe]
pub fn tcp_retrans_kprobe(ctx: ProbeContext) -> u32 {
    let (ctx, args) = (ctx.as_ptr() as u64, &LAYOUT.tcp_retransmit_fn[KPROBE]);
    calls::enter(function::TCP_RETRANSMIT_SKB, [arg(ctx, args, SK), arg(ctx, args, SECOND)]);
    0
}

#[kretprobe]
pub fn tcp_retrans_kretprobe(ctx: RetProbeContext) -> u32 {
    if let Some([sk, skb]) = calls::exit(function::TCP_RETRANSMIT_SKB) {
        let ret: u64 = arg(ctx.as_ptr() as u64, &LAYOUT.tcp_retransmit_fn[KPROBE], RET);
        retransmit_returned(sk, skb, ret);
    }
    0
}

/// A failed attempt, counted in the segments it was to send, as TCPRetransFail counts them:
/// the skb's, as the call left it (cut to the window; a failed one stays queued).
#[inline(always)]
fn retransmit_returned(sk: u64, skb: u64, ret: u64) {
    let ret = ret as i32;
    if ret == 0 {
        return;
    }
    let state: u8 = read(sk, offset!(sk_state));
    let segs = read::<u16>(skb, offset!(skb_tcp_gso_segs)).max(1) as u32;
    emit(sk_netns(H, sk), kind::RETRANS_FAILED, ret as u32, state as u32, segs, |ev| {
        sk_flow(sk, &mut ev.flow)
    });
}

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
const ERR: usize = 2;

#[inline(always)]
fn on_retransmit(ctx: u64, variant: usize) {
    let args = args_of(&LAYOUT.tcp_retransmit_skb, variant);
    let sk: u64 = arg(ctx, args, SK);
    let skb: u64 = arg(ctx, args, SECOND);
    let state: u8 = read(sk, offset!(sk_state));
    let syn_sent = offset!(tcp_syn_sent) as u8;
    let kind = if state == syn_sent { kind::RETRANS_SYN } else { kind::RETRANS_DATA };
    // A failed attempt (the qdisc or TSQ said no) sent nothing: not a retransmit.
    let err: i32 = optional_arg(ctx, args, ERR);
    if err != 0 {
        return;
    }
    let segs: u16 = read(skb, offset!(skb_tcp_gso_segs));
    emit(sk_netns(H, sk), kind, 0, state as u32, segs.max(1) as u32, |ev| {
        sk_flow(sk, &mut ev.flow)
    });
}

#[inline(always)]
fn on_retransmit_synack(ctx: u64, variant: usize) {
    let args = args_of(&LAYOUT.tcp_retransmit_synack, variant);
    let listener: u64 = arg(ctx, args, SK);
    let req: u64 = arg(ctx, args, SECOND);
    // A request sock begins with a sock_common, so the socket offsets fit it too.
    let state: u8 = read(req, offset!(sk_state));
    emit(sk_netns(H, listener), kind::RETRANS_SYNACK, 0, state as u32, 1, |ev| {
        sk_flow(req, &mut ev.flow)
    });
}

#[inline(always)]
fn on_send_reset(ctx: u64, variant: usize) {
    let args = args_of(&LAYOUT.tcp_send_reset, variant);
    let sk: u64 = arg(ctx, args, SK);
    if sk != 0 {
        let state: u8 = read(sk, offset!(sk_state));
        emit(sk_netns(H, sk), kind::RST_SENT, 0, state as u32, 1, |ev| sk_flow(sk, &mut ev.flow));
        return;
    }
    // No socket: the reply to a segment no socket wanted (a closed port, or a SYN-ACK whose
    // SYN went elsewhere). Its flow, turned around, is ours; its flags say what it was.
    let skb: u64 = arg(ctx, args, SECOND);
    emit(skb_netns(H, skb).0, kind::RST_SENT, 0, 0, 1, |ev| {
        let flow = &mut ev.flow;
        let l4 = skb_flow(H, skb, flow);
        if l4 != 0 && flow.proto == IPPROTO_TCP {
            ev.answered_flags = read::<u8>(l4, TCP_FLAGS) as u32;
        }
        core::mem::swap(&mut flow.saddr, &mut flow.daddr);
        core::mem::swap(&mut flow.sport, &mut flow.dport);
    });
}

#[inline(always)]
fn on_receive_reset(ctx: u64, variant: usize) {
    let sk: u64 = arg(ctx, args_of(&LAYOUT.tcp_receive_reset, variant), SK);
    let state: u8 = read(sk, offset!(sk_state));
    emit(sk_netns(H, sk), kind::RST_RECEIVED, 0, state as u32, 1, |ev| {
        sk_flow(sk, &mut ev.flow);
        // A connecting socket has had no traffic to be idle from.
        if state as u64 != offset!(tcp_syn_sent) {
            (ev.last_recv_ms, ev.last_send_ms) = idle_ms(sk);
        }
    });
}

/// Byte 13 of the TCP header.
const TCP_FLAGS: u64 = 13;

/// How long before now the socket last received (an ACK or data, whichever came later) and
/// last sent data, in ms; `NO_TIME` without the kernel's HZ. The stamps are the low 32 bits
/// of jiffies (tcp_jiffies32), so the differences are taken in u32.
#[inline(always)]
fn idle_ms(sk: u64) -> (u32, u32) {
    let hz = offset!(hz);
    if hz == 0 {
        return (NO_TIME, NO_TIME);
    }
    let now = unsafe { bpf_jiffies64() } as u32;
    let ago = |off: u64| now.wrapping_sub(read::<u32>(sk, off)) as u64;
    let recv = ago(offset!(tcp_rcv_tstamp)).min(ago(offset!(tcp_lrcvtime)));
    let send = ago(offset!(tcp_lsndtime));
    let ms = |j: u64| (j * 1000 / hz).min(NO_TIME as u64 - 1) as u32;
    (ms(recv), ms(send))
}

#[inline(always)]
fn emit(
    netns: u32,
    kind: u32,
    error: u32,
    state: u32,
    segs: u32,
    fill: impl FnOnce(&mut TcpEvent),
) {
    count(&TCP_COUNTS, &TcpKey { netns, kind, error }, segs as u64);
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
        (*ev).last_recv_ms = NO_TIME;
        (*ev).last_send_ms = NO_TIME;
        (*ev).answered_flags = 0;
        (*ev).error = error;
        fill(&mut *ev);
    }
    submit(entry);
}
