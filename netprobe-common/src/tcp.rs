//! TCP retransmits and resets: exact counts by (netns, kind), and one record per event.

use crate::event::{EventHeader, Flow};

/// What happened. Retransmit kinds count segments, the way TcpRetransSegs does.
pub mod kind {
    /// Data (or FIN) retransmitted on an established-or-later connection.
    pub const RETRANS_DATA: u32 = 1;
    /// SYN retransmitted by a connecting client (SYN_SENT).
    pub const RETRANS_SYN: u32 = 2;
    /// SYN-ACK retransmitted by a listener.
    pub const RETRANS_SYNACK: u32 = 3;
    pub const RST_SENT: u32 = 4;
    pub const RST_RECEIVED: u32 = 5;
    /// A retransmit attempt that sent nothing (tcp_retransmit_skb returned an error).
    pub const RETRANS_FAILED: u32 = 6;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpKey {
    pub netns: u32,
    pub kind: u32,
    /// `RETRANS_FAILED`: what tcp_retransmit_skb returned (an i32: -errno, or a positive
    /// NET_XMIT code); 0 for the other kinds.
    pub error: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpEvent {
    pub header: EventHeader,
    pub netns: u32,
    pub kind: u32,
    /// TCP_* state of the socket (kernel numbering); 0 when there was no socket.
    pub state: u32,
    /// Segments this event stands for (retransmits); 1 for resets.
    pub segs: u32,
    /// Local end as source, remote as destination.
    pub flow: Flow,
    /// Resets received: ms from the socket's last received segment, and from its last data
    /// sent, to the reset; [`NO_TIME`] when unknown (a connecting socket, or no HZ).
    pub last_recv_ms: u32,
    pub last_send_ms: u32,
    /// Resets sent with no socket: the TCP flags of the segment answered (`FLAG_*`).
    pub answered_flags: u32,
    /// As `TcpKey::error`.
    pub error: u32,
}

/// No time: the socket had none, or the loader could not learn the kernel's HZ.
pub const NO_TIME: u32 = u32::MAX;

/// TCP header flags, as the header's 14th byte has them.
pub const FLAG_FIN: u32 = 0x01;
pub const FLAG_SYN: u32 = 0x02;
pub const FLAG_RST: u32 = 0x04;
pub const FLAG_ACK: u32 = 0x10;

crate::user_pod!(TcpKey, TcpEvent);
