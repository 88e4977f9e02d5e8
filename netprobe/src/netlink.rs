//! The netlink plumbing sock_diag and link dumps share: a socket that cannot hang the agent,
//! one request, and the reply's messages and attributes.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// From linux/netlink.h (UAPI).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDR: usize = 16;

/// A netlink socket of `protocol` in the calling thread's netns.
pub fn socket(protocol: i32) -> io::Result<OwnedFd> {
    let fd =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, protocol) };
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
    Ok(sock)
}

/// Sends one dump request of message type `kind` with `body`, and hands each reply message's
/// payload to `each` until the dump is done.
pub fn dump(sock: &OwnedFd, kind: u16, body: &[u8], mut each: impl FnMut(&[u8])) -> io::Result<()> {
    let len = NLMSG_HDR + body.len();
    let mut req = Vec::with_capacity(len);
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&kind.to_ne_bytes());
    req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req.extend_from_slice(&[0; 8]); // seq, pid
    req.extend_from_slice(body);
    if unsafe { libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
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
                return Err(io::Error::other("malformed netlink reply"));
            }
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = -(u32_at(msgs, NLMSG_HDR) as i32);
                    return Err(io::Error::from_raw_os_error(errno));
                }
                _ => each(&msgs[NLMSG_HDR..len]),
            }
            msgs = &msgs[align(len).min(msgs.len())..];
        }
    }
}

/// The (type, payload) attributes packed in `b`.
pub fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]);
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[align(len).min(b.len())..];
        Some((kind, payload))
    })
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}
