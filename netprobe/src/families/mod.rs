//! The hook families: each directory owns its hooks, the decoding of its samples, its rows
//! and its findings. `crate::family::Family` lists them.

pub mod bursts;
pub mod conntrack;
pub mod drops;
pub mod listen;
pub mod ports;
pub mod softnet;
pub mod tcp;
