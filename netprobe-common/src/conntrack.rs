//! Console messages, for the conntrack family's "table full" signal.

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

crate::user_pod!(ConsoleEvent);
