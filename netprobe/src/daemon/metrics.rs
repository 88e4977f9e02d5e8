//! `/metrics`: the last snapshot's exact counters per pod, the active findings, and the
//! agent's own health, as a Prometheus exposition built with `prometheus-client` at every
//! scrape. Every metric and label is listed in docs/agent.md. Label sets are capped: what
//! does not fit is counted in `netprobe_series_dropped_total`, never silently lost.

use std::collections::{BTreeMap, HashMap};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    frames::{Header, Snapshot},
    health::Health,
    pods::PodMeta,
    report::findings::Finding,
};

/// Series one metric family may export; the rest are dropped and counted.
pub const MAX_SERIES: usize = 5000;
/// Kernel locations per pod in `netprobe_drop_locations_total`; the rest sum into `other`.
pub const TOP_LOCATIONS: usize = 10;

type Labels = Vec<(&'static str, String)>;

/// Upper bounds of `netprobe_burst_bin_rate_pps`, packets per second of one bin.
pub const RATE_BOUNDS: [u64; 9] =
    [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000];

/// A pod's per-bin rates in one direction, as the bursts family measured them since start.
#[derive(Debug, Clone, Default)]
pub struct BinRates {
    pub netns: u32,
    pub direction: &'static str,
    /// (upper bound, bins in that bucket), as RATE_BOUNDS and a last one for +Inf.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

/// A histogram whose buckets are counted elsewhere (the bursts family's HdrHistograms).
#[derive(Debug, Default)]
struct Counted(std::sync::Mutex<Counts>);

/// A histogram's sum, count and (upper bound, count in the bucket) buckets.
type Counts = (f64, u64, Vec<(f64, u64)>);

impl prometheus_client::metrics::TypedMetric for Counted {
    const TYPE: prometheus_client::metrics::MetricType =
        prometheus_client::metrics::MetricType::Histogram;
}

impl prometheus_client::encoding::EncodeMetric for Counted {
    fn encode(
        &self,
        mut e: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = &*self.0.lock().expect("not poisoned");
        e.encode_histogram::<prometheus_client::encoding::NoLabelSet>(*sum, *count, buckets, None)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

/// What one scrape shows.
pub struct Inputs<'a> {
    pub header: &'a Header,
    pub snapshot: &'a Snapshot,
    /// netns to pod name, for the pods whose series are exported (deleted pods drop out after
    /// their grace period).
    pub pods: &'a BTreeMap<u32, PodMeta>,
    pub findings: &'a [Finding],
    /// With the bursts family: bursts found per netns, and per-bin rates.
    pub bursts: &'a BTreeMap<u32, u64>,
    pub bin_rates: &'a [BinRates],
    pub retained_seconds: f64,
    pub retained_bytes: usize,
    pub last_scrape_seconds: f64,
}

/// Counters and gauges of one scrape, with the cap applied.
struct Builder {
    registry: Registry,
    series: usize,
    dropped: u64,
}

impl Builder {
    fn counter(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        let mut n = 0;
        for (labels, v) in rows {
            if n >= MAX_SERIES {
                self.dropped += 1;
                continue;
            }
            family.get_or_create(&labels).inc_by(v);
            n += 1;
        }
        self.series += n;
        self.registry.register(name, help, family);
    }

    fn gauge(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, f64)>) {
        let family = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let mut n = 0;
        for (labels, v) in rows {
            if n >= MAX_SERIES {
                self.dropped += 1;
                continue;
            }
            family.get_or_create(&labels).set(v);
            n += 1;
        }
        self.series += n;
        self.registry.register(name, help, family);
    }
}

/// The exposition text.
pub fn exposition(i: &Inputs) -> Result<String, std::fmt::Error> {
    let mut b = Builder { registry: Registry::default(), series: 0, dropped: 0 };
    let labels_of = |p: &PodMeta| -> Labels {
        vec![("namespace", p.namespace.clone().unwrap_or_default()), ("pod", p.name.clone())]
    };
    let pod = |netns: u32| -> Option<Labels> { i.pods.get(&netns).map(labels_of) };
    let with = |mut l: Labels, extra: &[(&'static str, String)]| {
        l.extend_from_slice(extra);
        l
    };
    let s = i.snapshot;

    let mut drops: BTreeMap<(u32, String), u64> = BTreeMap::new();
    let mut locations: BTreeMap<u32, Vec<(String, String, u64)>> = BTreeMap::new();
    for d in &s.rows.drops {
        let reason = i.header.reasons.name(d.reason);
        *drops.entry((d.netns, reason.clone())).or_default() += d.count;
        locations.entry(d.netns).or_default().push((d.location.clone(), reason, d.count));
    }
    b.counter(
        "netprobe_drops",
        "Packets the kernel dropped, by pod and drop reason (exact, since the agent started)",
        drops.iter().filter_map(|((n, r), v)| Some((with(pod(*n)?, &[("reason", r.clone())]), *v))),
    );
    let mut located = Vec::new();
    for (netns, mut rows) in locations {
        let Some(labels) = pod(netns) else { continue };
        rows.sort_by_key(|r| std::cmp::Reverse(r.2));
        let other: u64 = rows.iter().skip(TOP_LOCATIONS).map(|r| r.2).sum();
        for (location, reason, v) in rows.into_iter().take(TOP_LOCATIONS) {
            located.push((with(labels.clone(), &[("location", location), ("reason", reason)]), v));
        }
        if other > 0 {
            let l = with(labels, &[("location", "other".into()), ("reason", "other".into())]);
            located.push((l, other));
        }
    }
    b.counter(
        "netprobe_drop_locations",
        "Packets dropped, by pod and the kernel function that dropped them: each pod's top \
         locations, the rest as location=\"other\"",
        located,
    );
    b.counter(
        "netprobe_tcp_events",
        "TCP retransmits (segments, by kind; failed ones by what the kernel returned) and resets \
         sent and received, by pod (exact)",
        s.rows.tcp.iter().filter_map(|t| {
            let mut labels = vec![("event", t.event.as_str().to_owned())];
            labels.extend(t.error.clone().map(|e| ("error", e)));
            Some((with(pod(t.netns)?, &labels), t.count))
        }),
    );
    b.counter(
        "netprobe_port_errors",
        "connect() and bind() calls that failed with EADDRNOTAVAIL or EADDRINUSE, by pod",
        s.rows.ports.iter().filter_map(|p| {
            let extra = [("call", p.op.as_str().to_owned()), ("errno", p.errno.clone())];
            Some((with(pod(p.netns)?, &extra), p.count))
        }),
    );
    b.counter(
        "netprobe_linklocal_packets",
        "Packets of a pod's sockets to and from link-local services (VPC DNS resolver, instance \
         metadata, time sync) and DNS to the cluster DNS IPs, by service and direction (exact; \
         with --events linklocal)",
        s.rows.linklocal.iter().filter_map(|l| {
            let service = format!("{}/{}", std::net::SocketAddr::new(l.addr, l.port), l.proto);
            let extra = [
                ("destination", l.destination.as_str().into()),
                ("direction", l.direction.as_str().into()),
                ("service", service),
            ];
            Some((with(pod(l.netns)?, &extra), l.packets))
        }),
    );
    let netns = |f: fn(&crate::kstat::NetnsCounters) -> Option<u64>| {
        s.kernel.netns.iter().filter_map(move |(n, c)| Some((pod(*n)?, f(c)?))).collect::<Vec<_>>()
    };
    b.counter(
        "netprobe_listen_overflows",
        "Connection attempts dropped on a full accept queue, by pod (the pod's own TcpExt \
         ListenOverflows)",
        netns(|c| Some(c.listen_overflows)),
    );
    b.counter(
        "netprobe_conntrack_drops",
        "New connections dropped because the pod's conntrack table was full (its nf_conntrack \
         stat drop)",
        netns(|c| c.conntrack.map(|c| c.drop)),
    );
    b.counter(
        "netprobe_conntrack_insert_failed",
        "Conntrack inserts that lost a race, whose packets were dropped, by pod",
        netns(|c| c.conntrack.map(|c| c.insert_failed)),
    );
    b.counter(
        "netprobe_conntrack_early_drops",
        "Conntrack entries evicted to make room, by pod",
        netns(|c| c.conntrack.map(|c| c.early_drop)),
    );
    let gauge_of = |f: fn(&crate::kstat::NetnsCounters) -> Option<u64>| {
        netns(f).into_iter().map(|(l, v)| (l, v as f64)).collect::<Vec<_>>()
    };
    b.gauge(
        "netprobe_conntrack_entries",
        "Entries in the pod's conntrack table",
        gauge_of(|c| c.conntrack.map(|c| c.count)),
    );
    b.gauge(
        "netprobe_conntrack_max",
        "The pod's conntrack table limit (net.netfilter.nf_conntrack_max)",
        gauge_of(|c| c.conntrack.map(|c| c.max)),
    );
    let cpu = |c: u32| vec![("cpu", c.to_string())];
    b.counter(
        "netprobe_softnet_runs",
        "NET_RX softirq runs per CPU (exact)",
        s.rows.softnet.iter().map(|c| (cpu(c.cpu), c.runs)),
    );
    b.counter(
        "netprobe_softnet_squeezes",
        "NET_RX runs cut short on net.core.netdev_budget(_usecs) with packets left, per CPU",
        s.rows.softnet.iter().map(|c| (cpu(c.cpu), c.squeezes)),
    );
    b.counter(
        "netprobe_softnet_backlog_drops",
        "Packets dropped because the CPU's input backlog was full (softnet_stat dropped)",
        s.kernel.softnet_stat.iter().map(|c| (cpu(c.cpu), c.dropped)),
    );

    if !i.bin_rates.is_empty() || !i.bursts.is_empty() {
        b.counter(
            "netprobe_bursts",
            "Microbursts found, by pod (with the bursts family)",
            i.bursts.iter().filter_map(|(n, c)| Some((pod(*n)?, *c))),
        );
        let family = Family::<Labels, Counted>::default();
        for r in i.bin_rates {
            let Some(labels) = pod(r.netns) else { continue };
            let labels = with(labels, &[("direction", r.direction.to_owned())]);
            *family.get_or_create(&labels).0.lock().expect("not poisoned") =
                (r.sum, r.count, r.buckets.clone());
            b.series += 1;
        }
        b.registry.register(
            "netprobe_burst_bin_rate_pps",
            "Packets per second of each bin (1 ms), by pod and direction, since the agent started",
            family,
        );
    }

    // Findings name pods as text shows them (`namespace/name`).
    let by_display: HashMap<String, &PodMeta> = i.pods.values().map(|p| (p.display(), p)).collect();
    let mut active: HashMap<Labels, ()> = HashMap::new();
    for f in i.findings {
        let pods = if f.pods.is_empty() { vec![String::new()] } else { f.pods.clone() };
        for p in pods {
            let severity = serde_json::to_value(f.severity).ok();
            let severity = severity.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let (namespace, name) = match by_display.get(&p) {
                Some(meta) => (meta.namespace.clone().unwrap_or_default(), meta.name.clone()),
                None => (String::new(), p),
            };
            let l = vec![
                ("id", f.id.to_string()),
                ("namespace", namespace),
                ("pod", name),
                ("severity", severity),
            ];
            active.insert(l, ());
        }
    }
    b.gauge(
        "netprobe_finding_active",
        "1 while a finding (docs/findings.md) holds over the last 5 minutes, per pod",
        active.into_keys().map(|l| (l, 1.0)),
    );

    let Health { lost_samples, counter_overflow, read_errors, skipped_invocations } = s.health;
    let none = || Vec::<(&'static str, String)>::new();
    b.counter(
        "netprobe_lost_samples",
        "Samples lost because the ring buffer was full; exact counts are unaffected",
        [(none(), lost_samples)],
    );
    b.counter(
        "netprobe_count_map_full",
        "Counts lost because a kernel count map was full",
        [(none(), counter_overflow)],
    );
    b.counter(
        "netprobe_skipped_invocations",
        "Invocations of netprobe's programs the kernel skipped (another BPF program was running \
         on that CPU): events not seen at all",
        [(none(), skipped_invocations)],
    );
    b.counter(
        "netprobe_read_errors",
        "Kernel reads that failed inside BPF programs",
        [(none(), read_errors)],
    );
    b.gauge(
        "netprobe_map_entries",
        "Keys in each exact-count map",
        [("drops", s.rows.drops.len()), ("tcp", s.rows.tcp.len()), ("ports", s.rows.ports.len())]
            .map(|(m, n)| (vec![("map", m.to_owned())], n as f64)),
    );
    b.gauge("netprobe_pods", "Pods whose series are exported", [(none(), i.pods.len() as f64)]);
    b.gauge(
        "netprobe_retained_seconds",
        "How far back reports and findings can look",
        [(none(), i.retained_seconds)],
    );
    b.gauge(
        "netprobe_retained_bytes",
        "Memory the retained frames take, roughly",
        [(none(), i.retained_bytes as f64)],
    );
    b.gauge(
        "netprobe_scrape_duration_seconds",
        "How long the previous scrape took to build",
        [(none(), i.last_scrape_seconds)],
    );
    let dropped = b.dropped;
    b.counter(
        "netprobe_series_dropped",
        "Series left out of this scrape because a metric reached its cap (docs/agent.md)",
        [(none(), dropped)],
    );
    let series = b.series as f64 + 1.0;
    b.gauge("netprobe_series", "Series in this scrape", [(none(), series)]);
    let mut out = String::new();
    encode(&mut out, &b.registry)?;
    Ok(out)
}
