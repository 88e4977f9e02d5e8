//! `/metrics`: the last snapshot's exact counters per pod (each family's, from its
//! `families/<name>/metrics.rs`), the active findings, and the agent's own health, as a
//! Prometheus exposition built with `prometheus-client` at every scrape. Every metric and
//! label is listed in docs/agent.md. Label sets are capped: what does not fit is counted in
//! `netprobe_series_dropped_total`, never silently lost.

use std::collections::{BTreeMap, HashMap};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    families::{self, bursts::metrics::BinRates},
    frames::{Header, Snapshot},
    health::Health,
    kstat::NetnsCounters,
    pods::PodMeta,
    report::findings::Finding,
};

/// Series one metric family may export; the rest are dropped and counted.
pub const MAX_SERIES: usize = 5000;
pub type Labels = Vec<(&'static str, String)>;

/// A histogram whose buckets are counted elsewhere (the bursts family's HdrHistograms).
#[derive(Debug, Default)]
struct Counted(std::sync::Mutex<Counts>);

/// A histogram's sum, count and (upper bound, count in the bucket) buckets.
pub type Counts = (f64, u64, Vec<(f64, u64)>);

/// A family's part of /metrics (`families/<name>/metrics.rs`), registered in
/// `families::METRICS`, whose order is the exposition's.
pub trait Metrics: Sync {
    fn export(&self, i: &Inputs, b: &mut Builder);
}

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

impl Inputs<'_> {
    /// The `namespace` and `pod` labels of an exported pod's netns.
    pub fn pod(&self, netns: u32) -> Option<Labels> {
        let p = self.pods.get(&netns)?;
        Some(vec![("namespace", p.namespace.clone().unwrap_or_default()), ("pod", p.name.clone())])
    }

    /// A value of each exported pod's own kernel counters, where it has one.
    pub fn per_pod(&self, f: fn(&NetnsCounters) -> Option<u64>) -> Vec<(Labels, u64)> {
        let netns = &self.snapshot.kernel.netns;
        netns.iter().filter_map(|(n, c)| Some((self.pod(*n)?, f(c)?))).collect()
    }
}

/// `labels` and then `extra`.
pub fn with(mut labels: Labels, extra: &[(&'static str, String)]) -> Labels {
    labels.extend_from_slice(extra);
    labels
}

/// Counters and gauges of one scrape, with the cap applied.
pub struct Builder {
    registry: Registry,
    series: usize,
    dropped: u64,
    /// Keys in each family's exact-count map, for `netprobe_map_entries`.
    map_entries: Vec<(Labels, f64)>,
}

impl Builder {
    pub fn counter(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, u64)>,
    ) {
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

    pub fn gauge(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, f64)>) {
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

    /// A histogram of each labels' counts, kept in full: as many series as the labels that
    /// have a value.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (Labels, Counts)>,
    ) {
        let family = Family::<Labels, Counted>::default();
        for (labels, counts) in rows {
            *family.get_or_create(&labels).0.lock().expect("not poisoned") = counts;
            self.series += 1;
        }
        self.registry.register(name, help, family);
    }

    /// The keys in a family's exact-count map, `map` its name.
    pub fn map_entries(&mut self, map: &str, keys: usize) {
        self.map_entries.push((vec![("map", map.to_owned())], keys as f64));
    }
}

/// The exposition text.
pub fn exposition(i: &Inputs) -> Result<String, std::fmt::Error> {
    let mut b =
        Builder { registry: Registry::default(), series: 0, dropped: 0, map_entries: Vec::new() };
    for m in families::METRICS {
        m.export(i, &mut b);
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

    let Health { lost_samples, counter_overflow, read_errors, skipped_invocations } =
        i.snapshot.health;
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
    let entries = std::mem::take(&mut b.map_entries);
    b.gauge("netprobe_map_entries", "Keys in each exact-count map", entries);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ena::{allowances, tests::ena_stats, Counters},
        frames::{fixture, KernelCounters},
    };

    #[test]
    fn ena_allowances_are_counters_by_interface_and_allowance() {
        let eth0 =
            Counters { interface: "eth0".into(), counters: allowances(ena_stats(7, 3, 900)) };
        let snapshot = Snapshot {
            kernel: KernelCounters { ena: vec![eth0], ..Default::default() },
            ..Default::default()
        };
        let text = exposition(&Inputs {
            header: &fixture::header(&[]),
            snapshot: &snapshot,
            pods: &BTreeMap::new(),
            findings: &[],
            bursts: &BTreeMap::new(),
            bin_rates: &[],
            retained_seconds: 0.0,
            retained_bytes: 0,
            last_scrape_seconds: 0.0,
        })
        .unwrap();
        for line in [
            r#"netprobe_ena_allowance_exceeded_total{interface="eth0",allowance="pps"} 7"#,
            r#"netprobe_ena_allowance_exceeded_total{interface="eth0",allowance="linklocal"} 3"#,
            r#"netprobe_ena_allowance_exceeded_total{interface="eth0",allowance="bw_in"} 0"#,
            r#"netprobe_ena_conntrack_allowance_available{interface="eth0"} 900.0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        // The available count is a gauge only.
        assert!(!text.contains(r#"allowance="conntrack_allowance_available""#));
    }
}
