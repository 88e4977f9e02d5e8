//! The fixed header every ring-buffer record starts with.

/// Record kinds. An ID is never reused, even when a kind is retired.
pub mod kind {
    pub const DROP: u16 = 1;
    pub const TCP: u16 = 2;
    pub const PORT: u16 = 3;
    pub const CONSOLE: u16 = 4;
    pub const SQUEEZE: u16 = 5;
    pub const BURST: u16 = 6;
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

/// An IPv4 or IPv6 flow as the programs fill it in. IPv4 addresses use the first 4 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// AF_INET or AF_INET6; 0 when unknown.
    pub family: u16,
    /// Host order; 0 for protocols without ports.
    pub sport: u16,
    pub dport: u16,
    /// IPPROTO_*; 0 when unknown.
    pub proto: u8,
    pub _pad: u8,
    /// Network order.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

crate::user_pod!(EventHeader, Flow);
