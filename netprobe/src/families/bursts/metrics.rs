//! The bursts family's /metrics, when it runs: bursts per pod, and the per-bin rates as a
//! histogram per pod and direction.

use crate::daemon::metrics::{with, Builder, Inputs};

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

pub struct Metrics;

impl crate::daemon::metrics::Metrics for Metrics {
    fn export(&self, i: &Inputs, b: &mut Builder) {
        if i.bin_rates.is_empty() && i.bursts.is_empty() {
            return;
        }
        b.counter(
            "netprobe_bursts",
            "Microbursts found, by pod (with the bursts family)",
            i.bursts.iter().filter_map(|(n, c)| Some((i.pod(*n)?, *c))),
        );
        b.histogram(
            "netprobe_burst_bin_rate_pps",
            "Packets per second of each bin (1 ms), by pod and direction, since the agent started",
            i.bin_rates.iter().filter_map(|r| {
                let labels = with(i.pod(r.netns)?, &[("direction", r.direction.to_owned())]);
                Some((labels, (r.sum, r.count, r.buckets.clone())))
            }),
        );
    }
}
