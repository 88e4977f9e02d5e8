//! The lab's own cleanup: whatever fails, every later entry is still undone, and every
//! global sysctl restored.

mod common;

use std::{fs, path::Path};

use common::require_root;
use netprobe_tests::lab::Lab;

/// Removed when dropped, also when the test fails: the stray entry must not outlive it, or
/// the next lab would meet it too.
struct StrayEntry(&'static str);

impl Drop for StrayEntry {
    fn drop(&mut self) {
        let _ = fs::remove_dir(self.0);
    }
}

#[test]
fn cleanup_goes_on_past_a_failure_and_restores_every_sysctl() -> anyhow::Result<()> {
    require_root();
    let key = "/proc/sys/net/core/netdev_budget";
    // Read once the lab is up: it has undone whatever an earlier, killed lab left.
    let lab = Lab::up(&["pod-a"])?;
    let original = fs::read_to_string(key)?.trim().to_owned();
    let changed = (original.parse::<u64>()? + 1).to_string();
    lab.set_sysctl("net.core.netdev_budget", &changed)?;
    // An entry whose record cannot be removed (a directory), sorted before the sysctl: its
    // namespace is "already gone", and removing the record fails.
    let stray = StrayEntry("/run/netprobe-lab/netns.np-stray");
    fs::create_dir(stray.0)?;
    drop(lab);
    let now = fs::read_to_string(key)?.trim().to_owned();
    println!("netdev_budget: {original}, set {changed}, after cleanup {now}");
    assert_eq!(now, original, "the sysctl must be restored past the failed entry");
    assert!(!Path::new("/run/netns/pod-a").exists(), "pod-a must be removed");
    Ok(())
}
