//! What the kernel counts per netns but does not trace: listen-queue drops per listener
//! (sock_diag), and each pod's own counters (kstat), conntrack's among them. Polled inside
//! every pod once a second; growth becomes an event, and the counters are kept as evidence.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    clock::Clock,
    event::Event,
    families::{
        conntrack::{self, stats::Stats, ConntrackChange},
        listen::{self, ListenOverflow, ListenQueueChange},
    },
    kstat::NetnsCounters,
    names::Names,
    nsenter, sockdiag,
};

const EVERY: Duration = Duration::from_secs(1);
/// How early a drain may come and still poll: the drains that carry the poll are themselves a
/// second apart, and one a little short of the second must not put the poll off to the next.
const EARLY: Duration = Duration::from_millis(100);

pub struct Poller {
    /// TCP_LISTEN in this kernel's numbering, when listeners are polled.
    listen: Option<u32>,
    conntrack: bool,
    last_listeners: HashMap<listen::Key, sockdiag::Sock>,
    last_counters: HashMap<u32, NetnsCounters>,
    at: Instant,
}

/// What one poll read, per netns.
#[derive(Default)]
struct Polled {
    listeners: HashMap<listen::Key, sockdiag::Sock>,
    counters: HashMap<u32, NetnsCounters>,
}

impl Poller {
    pub fn new(listen: Option<u32>, conntrack: bool, namespaces: &[(u32, PathBuf)]) -> Self {
        let mut p = Self {
            listen,
            conntrack,
            last_listeners: HashMap::new(),
            last_counters: HashMap::new(),
            at: Instant::now(),
        };
        let first = p.poll(namespaces);
        (p.last_listeners, p.last_counters) = (first.listeners, first.counters);
        p
    }

    pub fn due(&self) -> bool {
        self.at.elapsed() + EARLY >= EVERY
    }

    /// Polls every namespace; returns what grew since the previous poll.
    pub fn events(&mut self, namespaces: &[(u32, PathBuf)], names: &Names) -> Vec<Event> {
        let Polled { listeners, counters } = self.poll(namespaces);
        let time = names.clock.wall(Clock::monotonic_now());
        let mut out = Vec::new();
        for ((netns, addr, port), l) in listen::grown(&self.last_listeners, &listeners) {
            out.push(Event::ListenOverflow(ListenOverflow {
                time: time.clone(),
                pod: names.pods.name(netns),
                netns,
                addr,
                port,
                drops: l.drops,
                queue: l.queue,
                max_queue: l.max_queue,
            }));
        }
        for (netns, now) in counters.iter().filter(|_| self.conntrack) {
            let Some(now) = &now.conntrack else { continue };
            let last = self.last_counters.get(netns);
            let before = last.and_then(|c| c.conntrack).unwrap_or_default();
            let change = now.since(&before);
            let full = |s: &Stats| {
                s.max > 0 && s.count as f64 >= s.max as f64 * conntrack::UTILISATION_WARN
            };
            if change.grew() || (full(now) && !full(&before)) {
                out.push(Event::Conntrack(ConntrackChange {
                    time: time.clone(),
                    pod: names.pods.name(*netns),
                    netns: *netns,
                    stats: change,
                }));
            }
        }
        for (netns, now) in counters.iter().filter(|_| self.listen.is_some()) {
            let before = self.last_counters.get(netns).copied().unwrap_or_default();
            let (o, d) = (before.listen_overflows, before.listen_drops);
            if now.listen_drops > d || now.listen_overflows > o {
                out.push(Event::ListenQueue(ListenQueueChange {
                    time: time.clone(),
                    pod: names.pods.name(*netns),
                    netns: *netns,
                    listen_overflows: now.listen_overflows.saturating_sub(o),
                    listen_drops: now.listen_drops.saturating_sub(d),
                }));
            }
        }
        self.last_listeners = listeners;
        self.last_counters = counters;
        out
    }

    /// Every pod's own counters at the last poll.
    pub fn counters(&self) -> &HashMap<u32, NetnsCounters> {
        &self.last_counters
    }

    fn poll(&mut self, namespaces: &[(u32, PathBuf)]) -> Polled {
        let listen_state = self.listen;
        self.at = Instant::now();
        let per_ns = nsenter::each(namespaces, |_| {
            let listeners = listen_state.map(|s| sockdiag::sockets(&[s]).unwrap_or_default());
            (listeners.unwrap_or_default(), NetnsCounters::read())
        });
        let mut polled = Polled::default();
        for (netns, (ls, counters)) in per_ns {
            for l in ls {
                polled.listeners.insert((netns, l.addr, l.port), l);
            }
            polled.counters.insert(netns, counters);
        }
        polled
    }
}
