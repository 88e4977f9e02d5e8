//! The netprobe lab: pods as network namespaces on a bridge, made and removed the way a CNI
//! plugin would, plus helpers the privileged tests share.

pub mod cri;
pub mod ftrace;
pub mod incidents;
pub mod lab;
pub mod netprobe;
pub mod prometheus;
pub mod traffic;
