//! What the kernel counts per netns but does not trace: listen-queue drops per listener
//! (sock_diag) and conntrack trouble (/proc/net/stat/nf_conntrack). Polled inside every pod
//! once a second; only growth becomes an event.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    clock::Clock,
    conntrack::{self, stats::Stats},
    event::Event,
    listen::{self, ListenOverflow},
    names::Names,
    nsenter, sockdiag,
};

const EVERY: Duration = Duration::from_secs(1);

pub struct Poller {
    /// TCP_LISTEN in this kernel's numbering, when listeners are polled.
    listen: Option<u32>,
    conntrack: bool,
    last_listeners: HashMap<listen::Key, sockdiag::Sock>,
    last_conntrack: HashMap<u32, Stats>,
    /// (ListenOverflows, ListenDrops) per netns.
    last_listen_mib: HashMap<u32, (u64, u64)>,
    at: Instant,
}

/// What one poll read, per netns.
#[derive(Default)]
struct Polled {
    listeners: HashMap<listen::Key, sockdiag::Sock>,
    conntrack: HashMap<u32, Stats>,
    listen_mib: HashMap<u32, (u64, u64)>,
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

/// A pod's conntrack counters grew, or its table passed the warning fill.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConntrackChange {
    pub time: String,
    pub pod: String,
    pub netns: u32,
    /// Growth since the previous poll; `count` and `max` are the table's fill now.
    #[serde(flatten)]
    pub stats: Stats,
}

impl Poller {
    pub fn new(listen: Option<u32>, conntrack: bool, namespaces: &[(u32, PathBuf)]) -> Self {
        let mut p = Self {
            listen,
            conntrack,
            last_listeners: HashMap::new(),
            last_conntrack: HashMap::new(),
            last_listen_mib: HashMap::new(),
            at: Instant::now(),
        };
        let first = p.poll(namespaces);
        (p.last_listeners, p.last_conntrack, p.last_listen_mib) =
            (first.listeners, first.conntrack, first.listen_mib);
        p
    }

    pub fn due(&self) -> bool {
        self.at.elapsed() >= EVERY
    }

    /// Polls every namespace; returns what grew since the previous poll.
    pub fn events(&mut self, namespaces: &[(u32, PathBuf)], names: &Names) -> Vec<Event> {
        let Polled { listeners, conntrack, listen_mib } = self.poll(namespaces);
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
        for (netns, now) in &conntrack {
            let before = self.last_conntrack.get(netns).copied().unwrap_or_default();
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
        for (netns, (overflows, drops)) in &listen_mib {
            let (o, d) = self.last_listen_mib.get(netns).copied().unwrap_or_default();
            if *drops > d || *overflows > o {
                out.push(Event::ListenQueue(ListenQueueChange {
                    time: time.clone(),
                    pod: names.pods.name(*netns),
                    netns: *netns,
                    listen_overflows: overflows.saturating_sub(o),
                    listen_drops: drops.saturating_sub(d),
                }));
            }
        }
        self.last_listeners = listeners;
        self.last_conntrack = conntrack;
        self.last_listen_mib = listen_mib;
        out
    }

    /// The conntrack fill (count, max) of every pod at the last poll.
    pub fn conntrack_fill(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.last_conntrack.iter().map(|(n, s)| (*n, s.count, s.max))
    }

    fn poll(&mut self, namespaces: &[(u32, PathBuf)]) -> Polled {
        let (listen_state, conntrack) = (self.listen, self.conntrack);
        let per_ns = nsenter::each(namespaces, |_| {
            let listeners = listen_state.map(|s| sockdiag::sockets(&[s]).unwrap_or_default());
            let mib = listen_state.and_then(|_| listen::queue_counters());
            let stats = if conntrack { Stats::read() } else { None };
            (listeners.unwrap_or_default(), mib, stats)
        });
        self.at = Instant::now();
        let mut polled = Polled::default();
        for (netns, (ls, mib, st)) in per_ns {
            for l in ls {
                polled.listeners.insert((netns, l.addr, l.port), l);
            }
            if let Some(mib) = mib {
                polled.listen_mib.insert(netns, mib);
            }
            if let Some(st) = st {
                polled.conntrack.insert(netns, st);
            }
        }
        polled
    }
}
