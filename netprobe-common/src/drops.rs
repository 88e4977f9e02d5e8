//! skb:kfree_skb — exact counts keyed by (netns, reason), and sampled drop records.

use crate::event::EventHeader;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropKey {
    /// Inode of the network namespace the drop is attributed to; 0 when unknown.
    pub netns: u32,
    /// Raw `enum skb_drop_reason` value (subsystem in the upper 16 bits).
    pub reason: u32,
}

/// `l3_proto` values: the EtherType, host order.
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropEvent {
    pub header: EventHeader,
    pub netns: u32,
    pub ifindex: u32,
    pub reason: u32,
    /// EtherType of the packet, host order; 0 when not parsed.
    pub l3_proto: u16,
    /// IPPROTO_*; 0 when not parsed.
    pub l4_proto: u8,
    pub _pad: u8,
    /// Kernel address the skb was freed from.
    pub location: u64,
    /// IPv4 addresses use the first 4 bytes. Network order.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Host order; 0 for protocols without ports.
    pub sport: u16,
    pub dport: u16,
    pub _pad2: u32,
}

crate::user_pod!(DropKey, DropEvent);
