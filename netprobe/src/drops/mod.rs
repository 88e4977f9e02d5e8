//! skb:kfree_skb: why packets were dropped, where in the kernel, and in which pod.

pub mod attach;
pub mod decode;

pub use attach::{Drops, TIERS};
pub use decode::DropSample;
