//! TCP sockets of the calling thread's netns in chosen states, from the kernel's sock_diag
//! netlink interface: both ends, the queues, and the socket's drop counter.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// From linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h (UAPI).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const INET_DIAG_SKMEMINFO: u16 = 7;
const SK_MEMINFO_DROPS: usize = 8;
const NLMSG_HDR: usize = 16;
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
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // The kernel answers at once; a reply that never comes must not hang the agent.
    let timeout = libc::timeval { tv_sec: 1, tv_usec: 0 };
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mask = states.iter().fold(0u32, |m, s| m | (1 << s));
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        send_dump(&sock, family, mask)?;
        recv_dump(&sock, &mut out)?;
    }
    Ok(out)
}

fn send_dump(sock: &OwnedFd, family: u8, states: u32) -> io::Result<()> {
    let len = NLMSG_HDR + DIAG_REQ;
    let mut req = Vec::with_capacity(len);
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&[0; 8]); // seq, pid
                                    // struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed sockid.
    req.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 1 << (INET_DIAG_SKMEMINFO - 1), 0]);
    req.extend_from_slice(&states.to_ne_bytes());
    req.extend_from_slice(&[0; 48]);
    let n = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv_dump(sock: &OwnedFd, out: &mut Vec<Sock>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut msgs = &buf[..n as usize];
        while msgs.len() >= NLMSG_HDR {
            let len = u32_at(msgs, 0) as usize;
            let kind = u16::from_ne_bytes([msgs[4], msgs[5]]);
            if len < NLMSG_HDR || len > msgs.len() {
                return Err(io::Error::other("malformed sock_diag reply"));
            }
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = -(u32_at(msgs, NLMSG_HDR) as i32);
                    return Err(io::Error::from_raw_os_error(errno));
                }
                _ => out.extend(parse(&msgs[NLMSG_HDR..len])),
            }
            msgs = &msgs[align(len).min(msgs.len())..];
        }
    }
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
    let mut attrs = &m[DIAG_MSG..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == INET_DIAG_SKMEMINFO && len >= 4 + 4 * (SK_MEMINFO_DROPS + 1) {
            sock.drops = u32_at(attrs, 4 + 4 * SK_MEMINFO_DROPS);
        }
        attrs = &attrs[align(len).min(attrs.len())..];
    }
    Some(sock)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn align(len: usize) -> usize {
    (len + 3) & !3
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
