//! TCP sockets of the calling thread's netns in chosen states, from the kernel's sock_diag
//! netlink interface: both ends, the queues, and the socket's drop counter.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::netlink::{self, u32_at};

/// From linux/sock_diag.h and linux/inet_diag.h (UAPI).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const INET_DIAG_SKMEMINFO: u16 = 7;
const SK_MEMINFO_DROPS: usize = 8;
/// struct inet_diag_req_v2 and struct inet_diag_msg.
const DIAG_REQ: usize = 56;
const DIAG_MSG: usize = 72;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sock {
    pub addr: IpAddr,
    pub port: u16,
    pub peer: IpAddr,
    pub peer_port: u16,
    /// For a listener, connections waiting for accept() (sk_ack_backlog).
    pub queue: u32,
    /// For a listener, the accept queue's limit (min(backlog, net.core.somaxconn)).
    pub max_queue: u32,
    /// sk_drops: for a listener, every tcp_listendrop() (ListenDrops) since it was created.
    pub drops: u32,
}

/// Every TCP socket (IPv4 and IPv6) of this thread's network namespace in one of `states`,
/// given in the kernel's TCP state numbering.
pub fn sockets(states: &[u32]) -> io::Result<Vec<Sock>> {
    let sock = netlink::socket(libc::NETLINK_SOCK_DIAG)?;
    let mut out = Vec::new();
    let mask = states.iter().fold(0u32, |m, s| m | (1 << s));
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        // struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed sockid.
        let mut req = Vec::with_capacity(DIAG_REQ);
        req.extend_from_slice(&[
            family,
            libc::IPPROTO_TCP as u8,
            1 << (INET_DIAG_SKMEMINFO - 1),
            0,
        ]);
        req.extend_from_slice(&mask.to_ne_bytes());
        req.extend_from_slice(&[0; 48]);
        netlink::dump(&sock, SOCK_DIAG_BY_FAMILY, &req, |m| out.extend(parse(m)))?;
    }
    Ok(out)
}

/// One struct inet_diag_msg and its attributes.
fn parse(m: &[u8]) -> Option<Sock> {
    if m.len() < DIAG_MSG {
        return None;
    }
    let v4 = m[0] == libc::AF_INET as u8;
    let ip = |b: &[u8]| -> Option<IpAddr> {
        Some(if v4 {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))
        })
    };
    let mut sock = Sock {
        addr: ip(&m[8..24])?,
        port: u16::from_be_bytes([m[4], m[5]]),
        peer: ip(&m[24..40])?,
        peer_port: u16::from_be_bytes([m[6], m[7]]),
        queue: u32_at(m, 56),
        max_queue: u32_at(m, 60),
        drops: 0,
    };
    for (kind, payload) in netlink::attributes(&m[DIAG_MSG..]) {
        if kind == INET_DIAG_SKMEMINFO && payload.len() >= 4 * (SK_MEMINFO_DROPS + 1) {
            sock.drops = u32_at(payload, 4 * SK_MEMINFO_DROPS);
        }
    }
    Some(sock)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// TCP_LISTEN in the kernel's numbering; the agent reads it from BTF.
    const TCP_LISTEN: u32 = 10;

    #[test]
    fn finds_our_own_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = sockets(&[TCP_LISTEN]).unwrap();
        let me = found.iter().find(|x| x.port == port).expect("our listener");
        assert_eq!(me.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((me.queue, me.drops), (0, 0));
        assert!(me.max_queue > 0);
    }
}
