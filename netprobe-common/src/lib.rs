//! What crosses the kernel boundary, and nothing else: `#[repr(C)]`, `Copy`, integers only,
//! explicit padding. The loader gets `aya::Pod` impls behind the `user` feature.
#![no_std]

pub mod bursts;
pub mod conntrack;
pub mod drops;
pub mod event;
pub mod layout;
pub mod linklocal;
pub mod ports;
pub mod softnet;
pub mod stats;
pub mod tcp;

/// Implements `aya::Pod` for wire types when built for userspace.
macro_rules! user_pod {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: repr(C), Copy, integers only, no implicit padding.
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pub(crate) use user_pod;
