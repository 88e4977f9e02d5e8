//! Where things are in the running kernel, resolved by the loader from BTF and tracepoint
//! format files, and handed to the programs as one read-only global. Never compiled in.

/// Byte offsets. Every field is required: the loader refuses to start when one cannot be
/// resolved, rather than read the wrong memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub net_device_nd_net: u32,
    pub net_device_ifindex: u32,
    pub sock_net: u32,
    pub net_ns_inum: u32,
    /// Offsets of kfree_skb's arguments inside the program context of the attached tier.
    pub kfree_skb_skb: u32,
    pub kfree_skb_location: u32,
    pub kfree_skb_reason: u32,
}

/// Load-time options that are not about kernel layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only sample drops in this netns (inode); 0 samples every netns. Counts are always kept.
    pub netns: u32,
    pub _pad: u32,
}

crate::user_pod!(KernelLayout, Filter);
