//! The fixed header every ring-buffer record starts with.

/// Record kinds. An ID is never reused, even when a kind is retired.
pub mod kind {
    pub const DROP: u16 = 1;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u16,
    pub _pad: u16,
    pub cpu: u32,
    /// CLOCK_MONOTONIC (bpf_ktime_get_ns).
    pub ts_ns: u64,
}

crate::user_pod!(EventHeader);
