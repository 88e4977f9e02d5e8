//! Ephemeral-port exhaustion and bind conflicts: connect() and bind() failing with
//! EADDRNOTAVAIL or EADDRINUSE. Exact counts by (netns, op, errno); one record per failure.

use crate::event::{EventHeader, Flow};

pub mod op {
    pub const CONNECT: u32 = 1;
    pub const BIND: u32 = 2;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    pub netns: u32,
    pub op: u32,
    /// Positive errno.
    pub errno: u32,
}

/// The socket holding the port a bind() conflicted with, as the kernel's conflict check left
/// it (function tiers); `family` 0 when not known.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    pub family: u16,
    pub port: u16,
    /// TCP_* state (kernel numbering).
    pub state: u32,
    pub addr: [u8; 16],
}

/// The sockaddr a pending connect()/bind() was called with, kept from entry to exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingCall {
    pub op: u32,
    pub len: u32,
    /// Enough for a sockaddr_in6.
    pub addr: [u8; 28],
    /// The socket's file descriptor.
    pub fd: u32,
    pub holder: Holder,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortEvent {
    pub header: EventHeader,
    pub netns: u32,
    pub op: u32,
    pub errno: u32,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; 16],
    pub _pad: u32,
    /// connect(): the destination as `daddr`/`dport`; bind(): the address as `saddr`/`sport`.
    pub flow: Flow,
    /// The netns's ip_local_port_range when the call failed; 0-0 when not read.
    pub port_lo: u16,
    pub port_hi: u16,
    /// The socket's own address and port when the call failed (port 0: none bound);
    /// `bound_family` 0 when the socket could not be read.
    pub bound_family: u16,
    pub bound_port: u16,
    pub bound_addr: [u8; 16],
    /// bind(): who held the port, where the conflict check ran under a function hook.
    pub holder: Holder,
}

crate::user_pod!(PortKey, Holder, PendingCall, PortEvent);
