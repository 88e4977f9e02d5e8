//! What the kernel cannot tell at the failing call: how many of the pod's ports sit in
//! TIME_WAIT towards the same destination. Polled inside the pod's netns, cached briefly so a
//! storm of errors costs one lookup a second, and marked with how long after the error it was
//! read. The port range and the socket's own address come with the sample, from the kernel.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use super::{PortOp, PortSample};
use crate::{clock::Clock, nsenter, pods::PodIndex, sockdiag};

const FRESH: Duration = Duration::from_secs(1);

/// One pod's TIME_WAIT sockets by destination, as read at `at_ns` (CLOCK_MONOTONIC).
struct Snapshot {
    at_ns: u64,
    time_wait: HashMap<(IpAddr, u16), u32>,
}

pub struct Context {
    time_wait_state: Option<u32>,
    by_netns: HashMap<u32, Snapshot>,
}

impl Context {
    pub fn new(time_wait_state: Option<u32>) -> Self {
        Self { time_wait_state, by_netns: HashMap::new() }
    }

    pub fn fill(&mut self, sample: &mut PortSample, pods: &PodIndex) {
        if sample.op != PortOp::Connect {
            return;
        }
        let (Some(d), Some(p), Some(tw)) =
            (sample.flow.daddr, sample.flow.dport, self.time_wait_state)
        else {
            return;
        };
        let now = Clock::monotonic_now();
        let stale = self
            .by_netns
            .get(&sample.netns)
            .is_none_or(|s| now.saturating_sub(s.at_ns) > FRESH.as_nanos() as u64);
        if stale {
            self.by_netns.remove(&sample.netns);
            let Some(pod) = pods.pods().find(|p| p.netns == sample.netns) else { return };
            let read = nsenter::each(&[(pod.netns, pod.path.clone())], |_| {
                let mut by_dest = HashMap::new();
                for s in sockdiag::sockets(&[tw]).unwrap_or_default() {
                    *by_dest.entry((s.peer, s.peer_port)).or_insert(0) += 1;
                }
                by_dest
            });
            // A pod whose netns is gone has no TIME_WAIT to read: the fact stays missing.
            let Some((_, time_wait)) = read.into_iter().next() else { return };
            self.by_netns.insert(sample.netns, Snapshot { at_ns: now, time_wait });
        }
        let Some(snap) = self.by_netns.get(&sample.netns) else { return };
        sample.time_wait_to_destination = Some(snap.time_wait.get(&(d, p)).copied().unwrap_or(0));
        sample.time_wait_age_ms = Some((snap.at_ns as i64 - sample.ts_ns as i64) / 1_000_000);
    }
}
