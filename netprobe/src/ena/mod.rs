//! ENA allowances (incident notes 01 and 02): an EC2 instance's network allowances (bandwidth
//! in and out, packets per second, tracked connections, packets to link-local services) are
//! enforced outside the guest, and the ENA driver is the only witness: it counts what they
//! queued or dropped as ethtool statistics `<allowance>_allowance_exceeded` per interface,
//! and `conntrack_allowance_available` is how many more connections the instance may track.
//! They are read from every interface of netprobe's netns (the node's) once a second.

pub mod findings;
pub mod metrics;
pub mod report;

use std::collections::BTreeMap;

use crate::{ethtool, links};

const EXCEEDED: &str = "_allowance_exceeded";
pub const AVAILABLE: &str = "conntrack_allowance_available";

/// One interface's allowance counters as they stand (frames, `kernel.ena`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub interface: String,
    pub counters: BTreeMap<String, u64>,
}

/// The interfaces of this thread's netns that have allowance counters, with them.
pub fn read() -> Vec<Counters> {
    let Ok(links) = links::links() else { return Vec::new() };
    links
        .into_iter()
        .filter_map(|l| {
            let counters = allowances(ethtool::stats(&l.name, is_allowance).ok()?);
            (!counters.is_empty()).then_some(Counters { interface: l.name, counters })
        })
        .collect()
}

/// The allowance counters among an interface's statistics.
pub fn allowances(stats: Vec<(String, u64)>) -> BTreeMap<String, u64> {
    stats.into_iter().filter(|(name, _)| is_allowance(name)).collect()
}

fn is_allowance(name: &str) -> bool {
    name.ends_with(EXCEEDED) || name == AVAILABLE
}

/// Which allowance an exceeded counter is: `pps` for `pps_allowance_exceeded`.
pub fn allowance(counter: &str) -> Option<&str> {
    counter.strip_suffix(EXCEEDED)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The ENI statistics an ENA interface reports (`ethtool -S eth0` on an EC2 instance), in
    /// the driver's order, among some of its others.
    pub fn ena_stats(pps: u64, linklocal: u64, available: u64) -> Vec<(String, u64)> {
        [
            ("tx_timeout", 0),
            ("suspend", 0),
            ("bw_in_allowance_exceeded", 0),
            ("bw_out_allowance_exceeded", 0),
            ("pps_allowance_exceeded", pps),
            ("conntrack_allowance_exceeded", 0),
            ("linklocal_allowance_exceeded", linklocal),
            ("conntrack_allowance_available", available),
            ("queue_0_tx_cnt", 123_456),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect()
    }

    #[test]
    fn the_allowance_counters_are_kept_and_named() {
        let kept = allowances(ena_stats(7, 0, 5000));
        let names: Vec<&str> = kept.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "bw_in_allowance_exceeded",
                "bw_out_allowance_exceeded",
                "conntrack_allowance_available",
                "conntrack_allowance_exceeded",
                "linklocal_allowance_exceeded",
                "pps_allowance_exceeded"
            ]
        );
        assert_eq!(allowance("bw_out_allowance_exceeded"), Some("bw_out"));
        assert_eq!(allowance(AVAILABLE), None);
        // A veth's statistics have none.
        assert!(allowances(vec![("peer_ifindex".into(), 4)]).is_empty());
    }
}
