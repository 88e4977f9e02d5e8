//! Per-bin packet rates per interface and per pod: HdrHistograms, their percentiles, and
//! terminal bar charts of them.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::{scope::Scope, BinTotal, Direction, Key};

/// Rates per interface and direction, and per pod and direction (its interfaces' bins added
/// up bin by bin).
#[derive(Default)]
pub struct Histograms {
    pub interfaces: BTreeMap<Key, Rates>,
    pub pods: BTreeMap<(String, Direction), Rates>,
}

impl Histograms {
    pub fn record(&mut self, bins: &[BinTotal], scope: &Scope, bin_ns: u64) {
        let bin_s = bin_ns as f64 / 1e9;
        let mut pods: BTreeMap<(String, Direction, u64), (u64, u64)> = BTreeMap::new();
        for b in bins {
            let rates = self.interfaces.entry(b.key).or_insert_with(Rates::new);
            rates.record(b.packets as f64 / bin_s, b.packets, b.bytes);
            let pod = scope.interfaces.get(&b.key.1).map_or("unknown", |i| i.pod.as_str());
            let sum = pods.entry((pod.to_owned(), b.key.0, b.id)).or_default();
            (sum.0, sum.1) = (sum.0 + b.packets, sum.1 + b.bytes);
        }
        for ((pod, direction, _), (packets, bytes)) in pods {
            let rates = self.pods.entry((pod, direction)).or_insert_with(Rates::new);
            rates.record(packets as f64 / bin_s, packets, bytes);
        }
    }
}

/// A pod's per-bin rates as the report and recordings keep them (docs/json.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodRates {
    pub pod: String,
    pub direction: Direction,
    pub rates: Summary,
}

impl Histograms {
    pub fn by_pod(&self) -> Vec<PodRates> {
        let rows = self.pods.iter();
        rows.map(|((pod, direction), r)| PodRates {
            pod: pod.clone(),
            direction: *direction,
            rates: r.summary(),
        })
        .collect()
    }
}

/// A rate distribution in numbers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub bins: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Per-bin rate percentiles (p50 ... max), packets per second.
    pub percentiles: BTreeMap<String, u64>,
    /// (low, high, bins) per rate range, ranges doubling.
    pub histogram: Vec<(u64, u64, u64)>,
}

pub struct Rates {
    hist: Histogram<u64>,
    pub bins: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// The percentiles reported, as (label, quantile).
pub const PERCENTILES: [(&str, f64); 5] =
    [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)];

impl Rates {
    pub fn new() -> Self {
        // Three significant digits; grows as rates need.
        Self { hist: Histogram::new(3).expect("valid precision"), bins: 0, packets: 0, bytes: 0 }
    }

    pub fn record(&mut self, pps: f64, packets: u64, bytes: u64) {
        // record() grows the histogram as needed (saturating_record would clamp instead).
        if self.hist.record(pps.round() as u64).is_err() {
            self.hist.saturating_record(pps.round() as u64);
        }
        self.bins += 1;
        self.packets += packets;
        self.bytes += bytes;
    }

    pub fn summary(&self) -> Summary {
        Summary {
            bins: self.bins,
            packets: self.packets,
            bytes: self.bytes,
            percentiles: self.percentiles().into_iter().map(|(l, v)| (l.to_owned(), v)).collect(),
            histogram: self.ranges(),
        }
    }

    pub fn percentiles(&self) -> Vec<(&'static str, u64)> {
        PERCENTILES.iter().map(|(l, q)| (*l, self.hist.value_at_quantile(*q))).collect()
    }

    /// The per-bin rates in Prometheus buckets: (upper bound, bins in the bucket) for each
    /// bound and a last, unbounded one (`f64::MAX`, +Inf), the sum of the rates, and the bins.
    pub fn buckets(&self, bounds: &[u64]) -> (Vec<(f64, u64)>, f64, u64) {
        // Differences of counts at or below each bound: at 3 significant digits a bound and the
        // value after it can share one HdrHistogram bucket, so counting each range on its own
        // would count that bucket twice.
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = bounds
            .iter()
            .map(|b| {
                let upto = self.hist.count_between(0, *b);
                let n = upto - below;
                below = upto;
                (*b as f64, n)
            })
            .collect();
        buckets.push((f64::MAX, self.hist.len() - below));
        let sum = self
            .hist
            .iter_recorded()
            .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
            .sum();
        (buckets, sum, self.hist.len())
    }

    /// Bins per rate range, ranges doubling up to the maximum: (low, high, bins).
    pub fn ranges(&self) -> Vec<(u64, u64, u64)> {
        let max = self.hist.max();
        let mut out = vec![(0, 0, self.hist.count_between(0, 0))];
        let mut low = 1;
        while low <= max {
            let high = (low * 2 - 1).min(max);
            out.push((low, high, self.hist.count_between(low, high)));
            low *= 2;
        }
        // Ranges below the first busy one say nothing; keep the zero bucket and what follows.
        let first = out.iter().skip(1).position(|r| r.2 > 0).map_or(out.len(), |p| p + 1);
        out.drain(1..first);
        out
    }

    /// The chart: one line per range, bars scaled to the busiest range.
    pub fn chart(&self, width: usize) -> String {
        let ranges = self.ranges();
        let most = ranges.iter().map(|r| r.2).max().unwrap_or(0).max(1);
        let mut s = String::new();
        for (lo, hi, n) in ranges {
            let label =
                if hi == 0 { "0".to_owned() } else { format!("{}-{}", short(lo), short(hi)) };
            s += &format!(
                "  {label:>13} pps {:<width$} {n}\n",
                bar(n as f64 / most as f64 * width as f64)
            );
        }
        s
    }
}

fn bar(cells: f64) -> String {
    const PARTS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    let full = cells.floor() as usize;
    let mut s = "█".repeat(full);
    let eighths = ((cells - full as f64) * 8.0).round() as usize;
    if eighths > 0 {
        s.push(PARTS[eighths.min(8) - 1]);
    } else if full == 0 && cells > 0.0 {
        s.push('▏');
    }
    s
}

/// 1234567 as 1.2M.
pub fn short(v: u64) -> String {
    let (n, unit) = match v {
        0..1_000 => return v.to_string(),
        1_000..1_000_000 => (v as f64 / 1e3, "k"),
        _ => (v as f64 / 1e6, "M"),
    };
    let n = format!("{n:.3}");
    format!("{}{unit}", n.trim_end_matches('0').trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_ranges() {
        let mut r = Rates::new();
        for _ in 0..990 {
            r.record(2000.0, 2, 128);
        }
        for _ in 0..10 {
            r.record(100_000.0, 100, 6400);
        }
        let p: Vec<u64> = r.percentiles().iter().map(|(_, v)| *v).collect();
        assert_eq!(p[0], 2000);
        assert!((99_900..=100_100).contains(&p[4]), "{p:?}");
        assert_eq!((r.bins, r.packets), (1000, 2980));
        let total: u64 = r.ranges().iter().map(|x| x.2).sum();
        assert_eq!(total, 1000, "every bin is in one range");
        assert!(r.chart(20).contains('█'));
    }

    #[test]
    fn buckets_count_every_bin_once() {
        let mut r = Rates::new();
        // 100,000 and 100,032 share one bucket at 3 significant digits.
        for v in [99_000.0, 100_000.0, 100_032.0, 300_000.0] {
            r.record(v, 1, 64);
        }
        let (buckets, _, bins) = r.buckets(&[1000, 100_000]);
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), bins);
        assert_eq!((buckets[0].1, bins), (0, 4));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(999), "999");
        assert_eq!(short(2000), "2k");
        assert_eq!(short(1_250_000), "1.25M");
    }
}
