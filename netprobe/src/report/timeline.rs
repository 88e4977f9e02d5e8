//! Every exact counter as a series of per-second growth, from consecutive snapshots. The
//! report's totals are the series' sums, its charts their values, and a finding's time window
//! the seconds its series grew in.

use std::collections::BTreeMap;

use crate::{
    clock::Clock,
    frames::{KernelCounters, Snapshot},
    pods::PodMeta,
    reasons::Reasons,
};

/// What a series counts (docs/json.md, `timeline`): its JSON name, and its rank, which orders
/// the series (the JSON's order; ranks are fixed so it stays as it was). Each family declares
/// its own in `families/<name>/timeline.rs`; the kernel's own counters (kstat.rs) are here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Metric {
    rank: u16,
    name: &'static str,
    /// A kernel counter: a netns first polled late starts from its first reading, not zero.
    kernel: bool,
}

impl Metric {
    /// netprobe's own exact counts.
    pub const fn counted(rank: u16, name: &'static str) -> Self {
        Self { rank, name, kernel: false }
    }

    const fn kernel(rank: u16, name: &'static str) -> Self {
        Self { rank, name, kernel: true }
    }

    /// The kernel's own counters: per CPU from softnet_stat, else per netns.
    pub const KERNEL_TIME_SQUEEZE: Metric = Metric::kernel(500, "kernel_time_squeeze");
    pub const KERNEL_BACKLOG_DROPPED: Metric = Metric::kernel(501, "kernel_backlog_dropped");
    pub const KERNEL_TCP_OUT_SEGS: Metric = Metric::kernel(502, "kernel_tcp_out_segs");
    pub const KERNEL_TCP_RETRANS_SEGS: Metric = Metric::kernel(503, "kernel_tcp_retrans_segs");
    pub const KERNEL_TCP_OUT_RSTS: Metric = Metric::kernel(504, "kernel_tcp_out_rsts");
    pub const KERNEL_TCP_SYN_RETRANS: Metric = Metric::kernel(505, "kernel_tcp_syn_retrans");
    pub const KERNEL_LISTEN_OVERFLOWS: Metric = Metric::kernel(506, "kernel_listen_overflows");
    pub const KERNEL_LISTEN_DROPS: Metric = Metric::kernel(507, "kernel_listen_drops");
    pub const KERNEL_UDP_NO_PORTS: Metric = Metric::kernel(508, "kernel_udp_no_ports");
    pub const KERNEL_IP_PACKETS: Metric = Metric::kernel(509, "kernel_ip_packets");
    pub const KERNEL_CONNTRACK_DROP: Metric = Metric::kernel(510, "kernel_conntrack_drop");
    pub const KERNEL_CONNTRACK_INSERT_FAILED: Metric =
        Metric::kernel(511, "kernel_conntrack_insert_failed");
    pub const KERNEL_CONNTRACK_EARLY_DROP: Metric =
        Metric::kernel(512, "kernel_conntrack_early_drop");
    pub const KERNEL_CONNTRACK_INVALID: Metric = Metric::kernel(513, "kernel_conntrack_invalid");
    pub const KERNEL_TCP_ESTAB_RESETS: Metric = Metric::kernel(514, "kernel_tcp_estab_resets");
}

impl serde::Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

/// Adds a cumulative value to a series: (metric, subject, label, value).
pub type Add<'a> = dyn FnMut(Metric, Subject, String, u64) + 'a;

/// The pods of a collection, by netns inode. A pod that takes over the inode of one that went
/// away (a new sandbox) is a new pod: its series get an id of their own, and counts never
/// merge across the two.
#[derive(Default)]
pub struct Pods {
    by_inode: BTreeMap<u32, PodMeta>,
    /// The id a netns's series go to now, where it is not the inode itself.
    current: BTreeMap<u32, u32>,
    /// Ids of earlier pods of reused inodes: (inode, the pod).
    earlier: BTreeMap<u32, (u32, PodMeta)>,
}

impl Pods {
    /// Pods that went away keep their names; a new sandbox on an inode is a new pod.
    pub fn update(&mut self, pods: &BTreeMap<u32, PodMeta>) {
        for (inode, meta) in pods {
            match self.by_inode.get(inode) {
                Some(old) if old.sandbox != meta.sandbox || old.display() != meta.display() => {
                    // The old pod's series keep the id they had; the new one gets a fresh id.
                    let old_id = self.id(*inode);
                    let fresh = u32::MAX - self.earlier.len() as u32;
                    self.earlier.insert(old_id, (*inode, old.clone()));
                    self.current.insert(*inode, fresh);
                }
                _ => {}
            }
            self.by_inode.insert(*inode, meta.clone());
        }
    }

    /// The id series of this netns go to now.
    pub fn id(&self, inode: u32) -> u32 {
        self.current.get(&inode).copied().unwrap_or(inode)
    }

    /// The netns inode behind a series id.
    pub fn inode(&self, id: u32) -> u32 {
        match self.earlier.get(&id) {
            Some((inode, _)) => *inode,
            None => self.current.iter().find(|(_, c)| **c == id).map_or(id, |(i, _)| *i),
        }
    }

    /// The pod behind a series id.
    pub fn meta(&self, id: u32) -> Option<&PodMeta> {
        match self.earlier.get(&id) {
            Some((_, meta)) => Some(meta),
            None => self.by_inode.get(&self.inode(id)),
        }
    }

    /// The netns of a pod by name (`namespace/name`, a unique bare name, or `netns:<inode>`).
    pub fn lookup(&self, name: &str) -> Option<u32> {
        if let Some(inode) = name.strip_prefix("netns:").and_then(|s| s.parse().ok()) {
            return Some(inode);
        }
        if let Some((n, _)) = self.all().find(|(_, p)| p.display() == name) {
            return Some(*n);
        }
        let mut bare = self.all().filter(|(_, p)| p.name == name);
        match (bare.next(), bare.next()) {
            (Some((n, _)), None) => Some(*n),
            _ => None,
        }
    }

    /// Every pod seen, by inode (the latest on each).
    pub fn all(&self) -> impl Iterator<Item = (&u32, &PodMeta)> {
        self.by_inode.iter()
    }
}

/// Whose series: a netns (a pod) or a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    Netns(u32),
    Cpu(u32),
}

pub type Key = (Metric, Subject, String);

/// Series as they grow, one value per interval between snapshots.
#[derive(Default)]
pub struct Timeline {
    /// CLOCK_MONOTONIC end of each interval; the first snapshot is the start.
    pub ends_ns: Vec<u64>,
    pub start_ns: u64,
    pub series: BTreeMap<Key, Vec<u64>>,
    /// Per netns, the pod it was when its counters last grew.
    pub names: BTreeMap<u32, String>,
}

impl Timeline {
    /// Appends the growth from `before` to `after`.
    pub fn push(&mut self, before: &Snapshot, after: &Snapshot, reasons: &Reasons, pods: &Pods) {
        if self.ends_ns.is_empty() {
            self.start_ns = before.t_ns;
        }
        let (old, new) = (totals(before, reasons), totals(after, reasons));
        let n = self.ends_ns.len();
        for (key, value) in new {
            // A netns first polled now (a pod found late) starts its kernel counters here.
            let before = old.get(&key).copied().or((!key.0.kernel).then_some(0));
            let grew = before.map_or(0, |b| value.saturating_sub(b));
            // Growth goes to the pod the netns is now: a reused inode is a new pod.
            let key = match key.1 {
                Subject::Netns(inode) => (key.0, Subject::Netns(pods.id(inode)), key.2),
                Subject::Cpu(_) => key,
            };
            if let (Subject::Netns(id), true) = (key.1, grew > 0) {
                if let Some(pod) = pods.meta(id) {
                    self.names.insert(id, pod.display());
                }
            }
            let series = self.series.entry(key).or_insert_with(|| vec![0; n]);
            series.push(grew);
        }
        for series in self.series.values_mut() {
            series.resize(n + 1, 0);
        }
        self.ends_ns.push(after.t_ns);
    }

    pub fn total(&self, key: &Key) -> u64 {
        self.series.get(key).map_or(0, |s| s.iter().sum())
    }

    /// (subject, label, total) of every series of `metric` with a non-zero total.
    pub fn totals(&self, metric: Metric) -> impl Iterator<Item = (Subject, &str, u64)> {
        self.series
            .range((metric, Subject::Netns(0), String::new())..)
            .take_while(move |((m, ..), _)| *m == metric)
            .map(|((_, s, l), v)| (*s, l.as_str(), v.iter().sum()))
            .filter(|(.., t)| *t > 0)
    }

    /// Per-interval sum over every series of `metric` whose subject passes `keep`.
    pub fn sum(&self, metric: Metric, keep: impl Fn(Subject, &str) -> bool) -> Vec<u64> {
        let mut out = vec![0; self.ends_ns.len()];
        for ((m, s, l), values) in &self.series {
            if *m == metric && keep(*s, l) {
                for (o, v) in out.iter_mut().zip(values) {
                    *o += v;
                }
            }
        }
        out
    }
}

/// Every cumulative value of a snapshot, keyed.
fn totals(s: &Snapshot, reasons: &Reasons) -> BTreeMap<Key, u64> {
    let mut out: BTreeMap<Key, u64> = BTreeMap::new();
    let mut add = |metric: Metric, subject: Subject, label: String, v: u64| {
        *out.entry((metric, subject, label)).or_default() += v;
    };
    crate::families::totals(s, reasons, &mut add);
    kernel(&s.kernel, &mut add);
    out
}

fn kernel(k: &KernelCounters, add: &mut Add) {
    for c in &k.softnet_stat {
        add(Metric::KERNEL_TIME_SQUEEZE, Subject::Cpu(c.cpu), String::new(), c.time_squeeze);
        add(Metric::KERNEL_BACKLOG_DROPPED, Subject::Cpu(c.cpu), String::new(), c.dropped);
    }
    for (netns, c) in &k.netns {
        let mut put = |m, v| add(m, Subject::Netns(*netns), String::new(), v);
        put(Metric::KERNEL_TCP_OUT_SEGS, c.tcp_out_segs);
        put(Metric::KERNEL_TCP_RETRANS_SEGS, c.tcp_retrans_segs);
        put(Metric::KERNEL_TCP_OUT_RSTS, c.tcp_out_rsts);
        put(Metric::KERNEL_TCP_ESTAB_RESETS, c.tcp_estab_resets);
        put(Metric::KERNEL_TCP_SYN_RETRANS, c.tcp_syn_retrans);
        put(Metric::KERNEL_LISTEN_OVERFLOWS, c.listen_overflows);
        put(Metric::KERNEL_LISTEN_DROPS, c.listen_drops);
        put(Metric::KERNEL_UDP_NO_PORTS, c.udp_no_ports);
        put(Metric::KERNEL_IP_PACKETS, c.ip_packets);
        if let Some(ct) = c.conntrack {
            put(Metric::KERNEL_CONNTRACK_DROP, ct.drop);
            put(Metric::KERNEL_CONNTRACK_INSERT_FAILED, ct.insert_failed);
            put(Metric::KERNEL_CONNTRACK_EARLY_DROP, ct.early_drop);
            put(Metric::KERNEL_CONNTRACK_INVALID, ct.invalid);
        }
    }
}

/// The timeline as the report shows it (docs/json.md, `timeline`): series with a non-zero
/// total, named by pod or CPU.
#[derive(Debug, Default, serde::Serialize)]
pub struct TimelineView {
    /// Wall-clock time of the first snapshot.
    pub start: String,
    /// Seconds from `start` to the end of each interval.
    pub t_s: Vec<f64>,
    pub series: Vec<SeriesView>,
}

#[derive(Debug, serde::Serialize)]
pub struct SeriesView {
    pub metric: Metric,
    /// The pod, for per-netns series.
    pub pod: Option<String>,
    pub netns: Option<u32>,
    pub cpu: Option<u32>,
    pub label: String,
    pub values: Vec<u64>,
}

impl TimelineView {
    pub fn new(
        tl: &Timeline,
        clock: &Clock,
        name: impl Fn(u32) -> String,
        keep: impl Fn(Subject) -> bool,
    ) -> Self {
        let t_s = tl.ends_ns.iter().map(|e| e.saturating_sub(tl.start_ns) as f64 / 1e9).collect();
        let view = |metric, subject, label: String, values: Vec<u64>| {
            let (pod, netns, cpu) = match subject {
                Subject::Netns(n) => (Some(name(n)), Some(n), None),
                Subject::Cpu(c) => (None, None, Some(c)),
            };
            SeriesView { metric, pod, netns, cpu, label, values }
        };
        let series: Vec<SeriesView> = tl
            .series
            .iter()
            .filter(|((_, s, _), v)| keep(*s) && v.iter().any(|x| *x > 0))
            .map(|((m, s, l), v)| view(*m, *s, l.clone(), v.clone()))
            .collect();
        Self { start: clock.wall(tl.start_ns), t_s, series }
    }
}
