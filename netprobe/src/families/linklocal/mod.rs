//! Link-local services (incident notes 02): the VPC resolver (169.254.169.253), instance
//! metadata (169.254.169.254) and time sync (169.254.169.123), fd00:ec2::/64 for IPv6, take
//! 1024 packets per second per ENI, shared by every pod of the node; packets over it are
//! dropped. The kernel counts every packet of a pod's sockets to or from those addresses, and
//! DNS to the cluster DNS service IPs (`--dns-ip`), by remote address and port, at cgroup_skb
//! egress and ingress on the root cgroup v2.

pub mod findings;
pub mod metrics;
pub mod report;
pub mod snapshot;
pub mod timeline;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::{
    maps::{HashMap, MapData},
    programs::CgroupSkbAttachType,
};
use netprobe_common::linklocal::{target, LinkLocalKey, IN, MAX_DNS_IPS};

use snapshot::LinkLocalRow;

use crate::{
    error::Error,
    hooks::{Hook, Target, Variant},
    tiers::Tier,
};

pub const COUNTS_MAP: &str = "LINKLOCAL_COUNTS";
pub const DNS_IPS_MAP: &str = "DNS_IPS";

/// The per-ENI limit of the notes: packets per second, both directions.
pub const PPS_LIMIT: u32 = 1024;
/// The node's peak second at this share of the limit is a warning.
pub const WARN_SHARE: f64 = 0.8;

/// One variant: both programs on the root cgroup v2.
pub fn variants() -> Vec<Variant> {
    let hooks = vec![
        Hook { program: "linklocal_egress", target: Target::Cgroup(CgroupSkbAttachType::Egress) },
        Hook { program: "linklocal_ingress", target: Target::Cgroup(CgroupSkbAttachType::Ingress) },
    ];
    vec![Variant { tier: Tier::CgroupSkb, hooks }]
}

/// What is counted besides link-local, and the limit findings measure against.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// The cluster DNS service IPs (`--dns-ip`).
    pub dns_ips: Vec<IpAddr>,
    /// `--linklocal-pps-limit`.
    pub pps_limit: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { dns_ips: Vec::new(), pps_limit: PPS_LIMIT }
    }
}

/// Hands the kernel the cluster DNS IPs to count DNS to.
pub fn set_dns_ips(map: &mut HashMap<MapData, [u8; 16], u8>, ips: &[IpAddr]) -> Result<(), Error> {
    if ips.len() > MAX_DNS_IPS as usize {
        return Err(Error::Tier(format!("at most {MAX_DNS_IPS} --dns-ip, not {}", ips.len())));
    }
    for ip in ips {
        map.insert(wire_addr(*ip), 1, 0)?;
    }
    Ok(())
}

/// An address as the kernel keys it: IPv4 in the first 4 bytes.
fn wire_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut a = [0; 16];
            a[..4].copy_from_slice(&v4.octets());
            a
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The remote end of a counted packet.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// 169.254.0.0/16 or fd00:ec2::/64.
    LinkLocal,
    /// A cluster DNS service IP (`--dns-ip`), port 53.
    ClusterDns,
}

impl Destination {
    /// As JSON names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Destination::LinkLocal => "link_local",
            Destination::ClusterDns => "cluster_dns",
        }
    }
}

/// Which way a packet went, as the pod's socket sees it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent to the service.
    Out,
    /// Received from it.
    In,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// A kernel key and its count as a snapshot row; None for a key of unknown kind.
pub fn row(k: &LinkLocalKey, packets: u64) -> Option<LinkLocalRow> {
    let destination = match k.target {
        target::LINK_LOCAL => Destination::LinkLocal,
        target::CLUSTER_DNS => Destination::ClusterDns,
        _ => return None,
    };
    let addr = match k.version {
        4 => IpAddr::V4(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3])),
        _ => IpAddr::V6(Ipv6Addr::from(k.addr)),
    };
    Some(LinkLocalRow {
        netns: k.netns,
        destination,
        direction: if k.direction == IN { Direction::In } else { Direction::Out },
        proto: proto_name(k.proto),
        addr,
        port: k.port,
        packets,
    })
}

fn proto_name(proto: u8) -> String {
    match proto {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

/// A series label of the timeline: `out udp 169.254.169.253 53`.
pub fn label(r: &LinkLocalRow) -> String {
    format!("{} {} {} {}", r.direction.as_str(), r.proto, r.addr, r.port)
}

/// A label back as (direction, proto, address, port).
pub fn parse_label(l: &str) -> Option<(Direction, String, IpAddr, u16)> {
    let mut parts = l.split(' ');
    let direction = match parts.next()? {
        "out" => Direction::Out,
        "in" => Direction::In,
        _ => return None,
    };
    let proto = parts.next()?.to_owned();
    let addr = parts.next()?.parse().ok()?;
    let port = parts.next()?.parse().ok()?;
    Some((direction, proto, addr, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_rows_and_labels_round_trip() {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&[169, 254, 169, 253]);
        let k = LinkLocalKey {
            netns: 7,
            target: target::LINK_LOCAL,
            direction: IN,
            proto: 17,
            version: 4,
            port: 53,
            _pad: 0,
            addr,
        };
        let r = row(&k, 12).unwrap();
        assert_eq!(r.addr, "169.254.169.253".parse::<IpAddr>().unwrap());
        assert_eq!(label(&r), "in udp 169.254.169.253 53");
        let back = parse_label(&label(&r)).unwrap();
        assert_eq!(back, (Direction::In, "udp".into(), r.addr, 53));
        let v6 = LinkLocalKey { version: 6, addr: wire_addr("fd00:ec2::23".parse().unwrap()), ..k };
        assert_eq!(row(&v6, 1).unwrap().addr.to_string(), "fd00:ec2::23");
        assert!(row(&LinkLocalKey { target: 9, ..k }, 1).is_none());
    }
}
