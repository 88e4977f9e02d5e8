//! Frames out of a running agent (`collect`) and into and out of files (`file`).

pub mod collect;
pub mod file;
