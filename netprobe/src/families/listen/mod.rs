//! Listen (accept) queue overflows per pod and listening port. A SYN that finds the accept
//! queue full is freed without a drop reason, so kfree_skb cannot see it. The kernel counts
//! it per netns (ListenOverflows, ListenDrops: exact per pod) and in the listener's sk_drops
//! (per port, via sock_diag). sk_drops also counts packets discarded on the listener for
//! other reasons, such as a handshake's last ACK when the queue is full, so per port it can
//! run a little above the pod's ListenDrops.

pub mod findings;
pub mod metrics;
pub mod report;

use std::{collections::HashMap, net::IpAddr};

use crate::sockdiag::Sock as Listener;

/// One listener, in one netns.
pub type Key = (u32, IpAddr, u16);

/// Listeners whose drop counter grew between two snapshots, with the growth as `drops`.
/// A listener that appeared in between counts from zero.
pub fn grown(
    before: &HashMap<Key, Listener>,
    after: &HashMap<Key, Listener>,
) -> Vec<(Key, Listener)> {
    let mut out: Vec<(Key, Listener)> = after
        .iter()
        .filter_map(|(k, l)| {
            let old = before.get(k).map_or(0, |b| b.drops);
            (l.drops > old).then(|| (*k, Listener { drops: l.drops - old, ..l.clone() }))
        })
        .collect();
    out.sort_by_key(|(k, l)| (std::cmp::Reverse(l.drops), *k));
    out
}

/// A listener's overflows as an event for watch and report (docs/json.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListenOverflow {
    pub time: String,
    pub pod: String,
    pub netns: u32,
    pub addr: IpAddr,
    pub port: u16,
    /// Connection attempts dropped since the previous report of this listener.
    pub drops: u32,
    /// Accept queue length and limit when polled.
    pub queue: u32,
    pub max_queue: u32,
}

/// A pod's own listen-queue counters (TcpExt in its /proc/net/netstat) grew.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListenQueueChange {
    pub time: String,
    pub pod: String,
    pub netns: u32,
    /// SYNs or handshake ACKs dropped because an accept queue was full, since the last poll.
    pub listen_overflows: u64,
    /// Every listen-path drop (overflows included), since the last poll.
    pub listen_drops: u64,
}

impl crate::event::Sample for ListenQueueChange {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: None,
            pod: &self.pod,
            what: "LISTEN_DROPS",
            flow: String::new(),
            tail: format!(
                "+{} ListenOverflows, +{} ListenDrops",
                self.listen_overflows, self.listen_drops
            ),
        }
    }
}

impl crate::event::Sample for ListenOverflow {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: None,
            pod: &self.pod,
            what: "LISTEN_OVERFLOW",
            flow: format!("tcp listen {}:{}", self.addr, self.port),
            tail: format!("{} dropped, accept queue {}/{}", self.drops, self.queue, self.max_queue),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn l(drops: u32) -> Listener {
        let any = Ipv4Addr::UNSPECIFIED.into();
        Listener { addr: any, port: 80, peer: any, peer_port: 0, queue: 1, max_queue: 1, drops }
    }

    #[test]
    fn only_growth_is_reported() {
        let key = |n| (n, IpAddr::from(Ipv4Addr::UNSPECIFIED), 80);
        let before = HashMap::from([(key(1), l(5)), (key(2), l(7))]);
        let after = HashMap::from([(key(1), l(9)), (key(2), l(7)), (key(3), l(2))]);
        let g = grown(&before, &after);
        assert_eq!(g.iter().map(|(k, l)| (k.0, l.drops)).collect::<Vec<_>>(), vec![(1, 4), (3, 2)]);
    }
}
