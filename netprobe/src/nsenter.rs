//! Running code inside other network namespaces. setns() changes only the calling thread, so
//! the work happens on a scratch thread and the agent's own threads stay where they are.

use std::{fs::File, os::fd::AsRawFd, path::PathBuf, thread};

/// `f(netns)` inside each of `namespaces` (inode, nsfs path), in order. A namespace that
/// cannot be entered (gone meanwhile) is skipped.
pub fn each<T: Send>(namespaces: &[(u32, PathBuf)], f: impl Fn(u32) -> T + Sync) -> Vec<(u32, T)> {
    thread::scope(|s| {
        s.spawn(|| {
            let mut out = Vec::new();
            for (netns, path) in namespaces {
                let Ok(ns) = File::open(path) else { continue };
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
                    out.push((*netns, f(*netns)));
                }
            }
            out
        })
        .join()
        .unwrap_or_default()
    })
}
