//! Packets between pods and link-local services (the VPC resolver, instance metadata, time
//! sync in 169.254.0.0/16 and fd00:ec2::/64), and DNS to the cluster's DNS service IPs: exact
//! counts by (netns, what, direction, remote address and port), one per packet.

/// What the remote end is.
pub mod target {
    /// 169.254.0.0/16 or fd00:ec2::/64.
    pub const LINK_LOCAL: u8 = 1;
    /// A configured cluster DNS service IP, port 53.
    pub const CLUSTER_DNS: u8 = 2;
}

/// Which way the packet went, as the pod's socket sees it.
pub const OUT: u8 = 0;
pub const IN: u8 = 1;

/// Cluster DNS service IPs the kernel matches (`--dns-ip`).
pub const MAX_DNS_IPS: u32 = 16;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkLocalKey {
    pub netns: u32,
    pub target: u8,
    pub direction: u8,
    /// IPPROTO_*.
    pub proto: u8,
    /// 4 or 6.
    pub version: u8,
    /// The remote end's port, host order; 0 without ports (or a later fragment).
    pub port: u16,
    pub _pad: u16,
    /// The remote end's address, network order; IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
}

crate::user_pod!(LinkLocalKey);
