//! The network interfaces of the calling thread's netns, from an rtnetlink link dump (sysfs
//! would show the netns it was mounted in, not the thread's).

use std::io;

use crate::netlink::{self, u32_at};

/// From linux/rtnetlink.h and linux/if_link.h (UAPI).
const RTM_GETLINK: u16 = 18;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
/// struct ifinfomsg.
const IFINFOMSG: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// The peer's ifindex (in the peer's netns) for a veth; its own ifindex for most others.
    pub iflink: u32,
}

pub fn links() -> io::Result<Vec<Link>> {
    let sock = netlink::socket(libc::NETLINK_ROUTE)?;
    let mut out = Vec::new();
    netlink::dump(&sock, RTM_GETLINK, &[0; IFINFOMSG], |m| {
        if m.len() < IFINFOMSG {
            return;
        }
        let ifindex = u32_at(m, 4);
        let mut link = Link { ifindex, name: String::new(), iflink: ifindex };
        for (kind, payload) in netlink::attributes(&m[IFINFOMSG..]) {
            match kind {
                IFLA_IFNAME => {
                    let name = payload.split(|b| *b == 0).next().unwrap_or_default();
                    link.name = String::from_utf8_lossy(name).into_owned();
                }
                IFLA_LINK if payload.len() >= 4 => link.iflink = u32_at(payload, 0),
                _ => {}
            }
        }
        out.push(link);
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed() {
        let all = links().unwrap();
        let lo = all.iter().find(|l| l.name == "lo").expect("lo");
        assert_eq!((lo.ifindex, lo.iflink), (1, 1));
    }
}
