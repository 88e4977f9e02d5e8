//! What an SRE needs next to a port error: the pod's ephemeral port range and how many of its
//! ports sit in TIME_WAIT towards the same destination. Read inside the pod's netns, and
//! cached briefly so that a storm of errors costs one lookup a second, not one each.

use std::{
    collections::HashMap,
    fs,
    net::IpAddr,
    time::{Duration, Instant},
};

use super::{PortOp, PortSample};
use crate::{nsenter, pods::PodIndex, sockdiag};

const FRESH: Duration = Duration::from_secs(1);

/// One pod's context as read at `at`.
struct Snapshot {
    at: Instant,
    port_range: Option<String>,
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
        let stale = self.by_netns.get(&sample.netns).is_none_or(|s| s.at.elapsed() > FRESH);
        if stale {
            let Some(pod) = pods.pods().find(|p| p.netns == sample.netns) else { return };
            let tw = self.time_wait_state;
            let read = nsenter::each(&[(pod.netns, pod.path.clone())], |_| {
                let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                    .ok()
                    .map(|r| r.split_whitespace().collect::<Vec<_>>().join("-"));
                let mut by_dest = HashMap::new();
                for s in tw.map(|t| sockdiag::sockets(&[t]).unwrap_or_default()).unwrap_or_default()
                {
                    *by_dest.entry((s.peer, s.peer_port)).or_insert(0) += 1;
                }
                (range, by_dest)
            });
            let Some((_, (port_range, time_wait))) = read.into_iter().next() else { return };
            self.by_netns
                .insert(sample.netns, Snapshot { at: Instant::now(), port_range, time_wait });
        }
        let Some(snap) = self.by_netns.get(&sample.netns) else { return };
        sample.ip_local_port_range = snap.port_range.clone();
        if sample.op == PortOp::Connect {
            if let (Some(d), Some(p)) = (sample.flow.daddr, sample.flow.dport) {
                sample.time_wait_to_destination =
                    Some(snap.time_wait.get(&(d, p)).copied().unwrap_or(0));
            }
        }
    }
}
