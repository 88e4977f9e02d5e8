//! TCP records to domain events (docs/json.md).

use netprobe_common::tcp::{kind, TcpEvent, FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, NO_TIME};

use crate::{flow::FlowView, names::Names, wire};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TcpSample {
    pub time: String,
    pub ts_ns: u64,
    pub cpu: u32,
    pub pod: String,
    pub netns: u32,
    pub event: TcpEventKind,
    /// Kernel TCP state name of the socket (`ESTABLISHED`); null when there was no socket.
    pub state: Option<String>,
    /// Segments this event stands for.
    pub segs: u32,
    /// `retransmit_failed`: what tcp_retransmit_skb returned (`EPERM`, `NET_XMIT_DROP`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Local end as source, remote end as destination.
    #[serde(flatten)]
    pub flow: FlowView,
    /// Resets received: ms from the socket's last received segment, and from its last data
    /// sent, to the reset (absent for a connecting socket, or without the kernel's HZ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recv_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_send_ms: Option<u32>,
    /// Resets sent with no socket: the flags of the segment answered (`SYN|ACK`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<String>,
}

impl TcpSample {
    /// A reset received on a connection that had been open: ESTABLISHED or CLOSE_WAIT, the
    /// states the kernel's Tcp EstabResets counts closes from.
    pub fn resets_open_connection(&self) -> bool {
        self.event == TcpEventKind::RstReceived
            && matches!(self.state.as_deref(), Some("ESTABLISHED" | "CLOSE_WAIT"))
    }

    /// A reset sent with no socket, answering a SYN-ACK.
    pub fn answers_synack(&self) -> bool {
        self.event == TcpEventKind::RstSent && self.answered.as_deref() == Some(SYNACK)
    }
}

pub const SYNACK: &str = "SYN|ACK";

/// TCP flags by name, `|`-separated, in header order.
fn flag_names(flags: u32) -> String {
    let names = [(FLAG_FIN, "FIN"), (FLAG_SYN, "SYN"), (FLAG_RST, "RST"), (FLAG_ACK, "ACK")];
    let set: Vec<&str> = names.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    set.join("|")
}

/// What a TCP record says happened (docs/json.md), in the names JSON and recordings use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TcpEventKind {
    /// Data (or FIN) retransmitted; counts segments, as TcpRetransSegs does.
    Retransmit,
    /// A connecting client's SYN sent again.
    SynRetransmit,
    /// A listener's SYN-ACK sent again.
    SynackRetransmit,
    RstSent,
    RstReceived,
    /// A retransmit attempt that sent nothing; counts the segments it was to send, as
    /// TCPRetransFail does. Seen at the function tiers only.
    RetransmitFailed,
    /// A kind this build does not know.
    #[serde(other)]
    Unknown,
}

impl TcpEventKind {
    pub fn from_wire(k: u32) -> Self {
        match k {
            kind::RETRANS_DATA => Self::Retransmit,
            kind::RETRANS_SYN => Self::SynRetransmit,
            kind::RETRANS_SYNACK => Self::SynackRetransmit,
            kind::RST_SENT => Self::RstSent,
            kind::RST_RECEIVED => Self::RstReceived,
            kind::RETRANS_FAILED => Self::RetransmitFailed,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retransmit => "retransmit",
            Self::SynRetransmit => "syn_retransmit",
            Self::SynackRetransmit => "synack_retransmit",
            Self::RstSent => "rst_sent",
            Self::RstReceived => "rst_received",
            Self::RetransmitFailed => "retransmit_failed",
            Self::Unknown => "unknown",
        }
    }
}

pub fn decode(bytes: &[u8], names: &Names) -> Option<TcpSample> {
    let ev = wire::read::<TcpEvent>(bytes)?;
    Some(TcpSample {
        time: names.clock.wall(ev.header.ts_ns),
        ts_ns: ev.header.ts_ns,
        cpu: ev.header.cpu,
        pod: names.pods.name(ev.netns),
        netns: ev.netns,
        event: TcpEventKind::from_wire(ev.kind),
        state: (ev.state != 0).then(|| names.tcp_states.name(ev.state)),
        segs: ev.segs,
        error: (ev.kind == kind::RETRANS_FAILED).then(|| return_code(ev.error as i32)),
        flow: FlowView::from(&ev.flow),
        last_recv_ms: (ev.last_recv_ms != NO_TIME).then_some(ev.last_recv_ms),
        last_send_ms: (ev.last_send_ms != NO_TIME).then_some(ev.last_send_ms),
        answered: (ev.answered_flags != 0).then(|| flag_names(ev.answered_flags)),
    })
}

impl crate::event::Sample for TcpSample {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: Some(self.cpu),
            pod: &self.pod,
            what: self.event.as_str(),
            flow: self.flow.text(),
            tail: self.state.as_deref().map(|s| format!("state {s}")).unwrap_or_default(),
        }
    }
}

/// What tcp_retransmit_skb returned: -errno, or a qdisc's positive NET_XMIT verdict
/// (include/linux/netdevice.h; not in BTF, being macros).
pub fn return_code(ret: i32) -> String {
    match ret {
        1 => "NET_XMIT_DROP".into(),
        2 => "NET_XMIT_CN".into(),
        r if r < 0 => crate::errno::name(-r),
        r => format!("NET_XMIT {r}"),
    }
}

#[cfg(test)]
mod tests {
    use netprobe_common::event::{kind as record, EventHeader, Flow, AF_INET6};

    use super::*;
    use crate::{names::tests::fixture, wire::tests::bytes_of};

    #[test]
    fn decodes_an_ipv6_syn_retransmit() {
        let mut flow =
            Flow { family: AF_INET6, proto: 6, sport: 5000, dport: 443, ..Default::default() };
        flow.daddr = "fd99::11".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let ev = TcpEvent {
            header: EventHeader { kind: record::TCP, _pad: 0, cpu: 0, ts_ns: 5 },
            netns: 4026532999,
            kind: kind::RETRANS_SYN,
            state: 2,
            segs: 1,
            flow,
            last_recv_ms: NO_TIME,
            last_send_ms: NO_TIME,
            answered_flags: 0,
            error: 0,
        };
        let s = decode(&bytes_of(&ev), &fixture()).unwrap();
        assert_eq!(s.event, TcpEventKind::SynRetransmit);
        assert_eq!(s.state.as_deref(), Some("SYN_SENT"));
        assert_eq!(s.pod, "pod-b");
        assert_eq!(s.flow.daddr, Some("fd99::11".parse().unwrap()));
        assert_eq!(s.flow.l3.as_deref(), Some("ipv6"));
        assert_eq!((s.last_recv_ms, s.last_send_ms, s.answered.as_deref()), (None, None, None));
    }

    #[test]
    fn flags_by_name() {
        assert_eq!(flag_names(FLAG_SYN | FLAG_ACK), SYNACK);
        assert_eq!(flag_names(FLAG_ACK | FLAG_FIN), "FIN|ACK");
        // PSH and URG are not named: a data segment reads as its ACK.
        assert_eq!(flag_names(0x08 | FLAG_ACK), "ACK");
    }

    #[test]
    fn failed_retransmits_carry_what_the_kernel_returned() {
        assert_eq!(return_code(-libc::EPERM), "EPERM");
        assert_eq!(return_code(1), "NET_XMIT_DROP");
        assert_eq!(return_code(-4095), "4095");
    }
}
