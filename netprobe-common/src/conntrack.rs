//! Console messages, for the conntrack family's "table full" signal, and at the kprobe tier
//! exact counts from nf_conntrack's own functions, by (netns, kind).

use crate::event::EventHeader;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleEvent {
    pub header: EventHeader,
    /// Bytes of `msg` that were copied.
    pub len: u32,
    pub _pad: u32,
    pub msg: [u8; 128],
}

pub mod kind {
    /// A new entry not allocated: the table was full and nothing could be evicted.
    pub const ALLOC_FAILED: u32 = 1;
    /// A new entry not inserted at confirmation: a lost race (a clash not resolved) or a hash
    /// chain too long; its packet is dropped.
    pub const CONFIRM_FAILED: u32 = 2;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtKey {
    pub netns: u32,
    pub kind: u32,
}

crate::user_pod!(ConsoleEvent, CtKey);
