//! netprobe's ethtool statistics reader (what it reads ENA allowance counters with) against a
//! real driver's statistics: a veth's `peer_ifindex` names its peer, which the kernel also
//! gives as that interface's ifindex. The ENA names themselves have no device here; a fixture
//! drives them through the report (netprobe/src/ena/findings.rs).

mod common;

use std::{fs::File, os::fd::AsRawFd, thread};

use netprobe::ethtool;
use netprobe_tests::lab::{host_veth, Lab};

fn peer_ifindex(stats: &[(String, u64)]) -> Option<u64> {
    stats.iter().find(|(name, _)| name == "peer_ifindex").map(|s| s.1)
}

#[test]
fn veth_statistics_name_the_peer_from_both_ends() -> anyhow::Result<()> {
    common::require_root();
    let lab = Lab::up(&["pod-a"])?;
    let host_if = host_veth("pod-a");
    let host_index: u64 =
        std::fs::read_to_string(format!("/sys/class/net/{host_if}/ifindex"))?.trim().parse()?;
    let pod_index: u64 = lab.sh_ok("pod-a", "cat /sys/class/net/eth0/ifindex")?.trim().parse()?;

    let host_side = ethtool::stats(&host_if, |_| true)?;
    // Read in the calling thread's netns: pod-a's, on a thread of its own.
    let netns = File::open("/run/netns/pod-a")?;
    let pod_side = thread::scope(|s| {
        s.spawn(|| {
            if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            ethtool::stats("eth0", |_| true)
        })
        .join()
        .expect("no panic")
    })?;
    println!("{host_if}: {host_side:?}\npod-a eth0: {pod_side:?}");
    assert_eq!(peer_ifindex(&host_side), Some(pod_index), "{host_side:?}");
    assert_eq!(peer_ifindex(&pod_side), Some(host_index), "{pod_side:?}");
    // The same driver, the same names in the same order.
    let names = |s: &[(String, u64)]| s.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&host_side), names(&pod_side));
    // Loopback keeps no driver statistics; an interface that does not exist is an error.
    assert!(ethtool::stats("lo", |_| true)?.is_empty());
    assert!(ethtool::stats("np-nosuch0", |_| true).is_err());
    // Only what is asked for, and nothing where the driver has none of it.
    assert_eq!(
        ethtool::stats(&host_if, |n| n == "peer_ifindex")?,
        [("peer_ifindex".into(), pod_index)]
    );
    assert!(ethtool::stats(&host_if, |n| n.ends_with("_allowance_exceeded"))?.is_empty());
    Ok(())
}
