//! TCP records to domain events (docs/json.md).

use netprobe_common::tcp::{kind, TcpEvent};

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
    /// Local end as source, remote end as destination.
    #[serde(flatten)]
    pub flow: FlowView,
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
        flow: FlowView::from(&ev.flow),
    })
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
        };
        let s = decode(&bytes_of(&ev), &fixture()).unwrap();
        assert_eq!(s.event, TcpEventKind::SynRetransmit);
        assert_eq!(s.state.as_deref(), Some("SYN_SENT"));
        assert_eq!(s.pod, "pod-b");
        assert_eq!(s.flow.daddr, Some("fd99::11".parse().unwrap()));
        assert_eq!(s.flow.l3.as_deref(), Some("ipv6"));
    }
}
