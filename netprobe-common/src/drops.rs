//! skb:kfree_skb — exact counts keyed by (netns, reason), and sampled drop records.

use crate::event::{EventHeader, Flow};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropKey {
    /// Inode of the network namespace the drop is attributed to; 0 when unknown.
    pub netns: u32,
    /// Raw `enum skb_drop_reason` value (subsystem in the upper 16 bits).
    pub reason: u32,
    /// Kernel address the skb was freed from: few distinct values, and counting them exactly
    /// tells verdict drops (nf_hook_slow) from rule drops (nft_do_chain) without sampling.
    pub location: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropEvent {
    pub header: EventHeader,
    pub netns: u32,
    pub ifindex: u32,
    pub reason: u32,
    pub _pad: u32,
    /// Kernel address the skb was freed from.
    pub location: u64,
    pub flow: Flow,
}

crate::user_pod!(DropKey, DropEvent);
