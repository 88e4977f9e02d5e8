//! The wire `Flow` as users see it: addresses, protocol names, ports where they exist.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netprobe_common::event::{Flow, AF_INET, AF_INET6};

/// Serialised flattened into each event; fields documented in docs/json.md.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FlowView {
    /// "ipv4" or "ipv6"; null when not parsed.
    pub l3: Option<String>,
    /// "tcp", "udp", "icmp", "icmpv6", else the protocol number; null when not parsed.
    pub proto: Option<String>,
    pub saddr: Option<IpAddr>,
    pub daddr: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl From<&Flow> for FlowView {
    fn from(f: &Flow) -> Self {
        let (l3, saddr, daddr) = match f.family {
            AF_INET => ("ipv4", v4(&f.saddr), v4(&f.daddr)),
            AF_INET6 => ("ipv6", v6(&f.saddr), v6(&f.daddr)),
            _ => return Self::default(),
        };
        // proto 0: not known (a syscall's sockaddr), but the ports are real.
        let ports = matches!(f.proto, 6 | 17) || (f.proto == 0 && (f.sport | f.dport) != 0);
        Self {
            l3: Some(l3.into()),
            proto: (f.proto != 0).then(|| proto_name(f.proto, f.family == AF_INET6)),
            saddr: Some(saddr),
            daddr: Some(daddr),
            sport: ports.then_some(f.sport),
            dport: ports.then_some(f.dport),
        }
    }
}

impl FlowView {
    /// `tcp 10.0.0.1:3456 -> 10.0.0.2:80`, or `non-IP`.
    pub fn text(&self) -> String {
        match (self.saddr, self.daddr) {
            (Some(src), Some(dst)) => {
                let port = |p: Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
                let proto = self.proto.as_deref().unwrap_or("?");
                format!("{proto} {src}{} -> {dst}{}", port(self.sport), port(self.dport))
            }
            _ => "non-IP".to_owned(),
        }
    }
}

fn v4(a: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
}

fn v6(a: &[u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(*a))
}

fn proto_name(p: u8, v6: bool) -> String {
    match (p, v6) {
        (6, _) => "tcp".into(),
        (17, _) => "udp".into(),
        (1, false) => "icmp".into(),
        (58, true) => "icmpv6".into(),
        (n, _) => n.to_string(),
    }
}
