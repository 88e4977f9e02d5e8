//! When a bin is part of a burst: the threshold as the user gives it, and the per-bin limits
//! the kernel compares each CPU's bins with, recomputed from the bins userspace reads.

use std::collections::HashMap;

use super::Key;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// At least this many packets per second in a bin.
    Pps(f64),
    /// At least this many bytes per second in a bin.
    BytesPerSec(f64),
    /// At least k times the interface's recent average rate, and at least `MIN_PACKETS`;
    /// nothing is a burst before one averaging window of quiet bins has been seen.
    Relative(f64),
}

/// A relative threshold never fires on fewer packets than this in a bin.
const MIN_PACKETS: u32 = 10;
/// A bin just before a burst joins it when it was this many times the quiet average: a burst
/// rarely starts on a bin boundary, and its first, partial bin is where it began.
const EDGE_FACTOR: f64 = 2.0;
/// How far back the recent average looks.
const AVERAGE_OVER_S: f64 = 1.0;

impl Threshold {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}`: give a rate like 200kpps or 50MB/s, or a factor like 4x");
        if let Some(k) = text.strip_suffix('x') {
            let k: f64 = k.parse().map_err(|_| bad())?;
            return if k > 1.0 {
                Ok(Self::Relative(k))
            } else {
                Err(format!("`{text}`: the factor must be above 1"))
            };
        }
        let (num, kind): (&str, fn(f64) -> Self) = match text.strip_suffix("pps") {
            Some(n) => (n, Self::Pps),
            None => (text.strip_suffix("B/s").ok_or_else(bad)?, Self::BytesPerSec),
        };
        let (num, scale) = match num.char_indices().last() {
            Some((i, 'k')) => (&num[..i], 1e3),
            Some((i, 'M')) => (&num[..i], 1e6),
            Some((i, 'G')) => (&num[..i], 1e9),
            _ => (num, 1.0),
        };
        let rate: f64 = num.parse().map_err(|_| bad())?;
        if rate > 0.0 {
            Ok(kind(rate * scale))
        } else {
            Err(bad())
        }
    }

    pub fn label(&self) -> String {
        match self {
            Threshold::Pps(p) => format!("{}pps", *p as u64),
            Threshold::BytesPerSec(b) => format!("{}B/s", *b as u64),
            Threshold::Relative(k) => format!("{k}x the recent average"),
        }
    }
}

/// What the kernel compares one CPU's bins of one interface and direction with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A bin with this many packets, or bytes, is over the threshold.
    pub packets: u32,
    pub bytes: u64,
    /// The bin before a burst's first is its leading edge with this many packets.
    pub edge_packets: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct Average {
    packets: f64,
    quiet_bins: u64,
}

/// Each interface's recent average per bin, from the quiet bins only, so that a burst does
/// not raise its own bar: a plain mean over the first window, then exponentially weighted
/// over one window.
pub struct Baseline {
    threshold: Threshold,
    bin_ns: u64,
    window: u64,
    averages: HashMap<Key, Average>,
}

impl Baseline {
    pub fn new(threshold: Threshold, bin_ns: u64) -> Self {
        let window = (AVERAGE_OVER_S * 1e9 / bin_ns as f64).ceil() as u64;
        Self { threshold, bin_ns, window, averages: HashMap::new() }
    }

    /// Feeds one finished bin, all CPUs together, in order per interface.
    pub fn push(&mut self, key: Key, packets: u64, bytes: u64) {
        let limits = self.limits(key);
        if packets >= u64::from(limits.packets) || bytes >= limits.bytes {
            return;
        }
        let a = self.averages.entry(key).or_default();
        a.quiet_bins += 1;
        let alpha = 1.0 / a.quiet_bins.min(self.window) as f64;
        a.packets += alpha * (packets as f64 - a.packets);
    }

    pub fn limits(&self, key: Key) -> Limits {
        let avg = self.averages.get(&key).copied().unwrap_or_default();
        let per_bin = |rate: f64| (rate * self.bin_ns as f64 / 1e9).ceil().max(1.0);
        let (packets, bytes) = match self.threshold {
            Threshold::Pps(pps) => (per_bin(pps) as u32, u64::MAX),
            Threshold::BytesPerSec(bps) => (u32::MAX, per_bin(bps) as u64),
            Threshold::Relative(k) if avg.quiet_bins >= self.window => {
                (((k * avg.packets).ceil() as u32).max(MIN_PACKETS), u64::MAX)
            }
            Threshold::Relative(_) => (u32::MAX, u64::MAX),
        };
        let edge_packets = ((EDGE_FACTOR * avg.packets).floor() as u32 + 1).max(2);
        Limits { packets, bytes, edge_packets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::bursts::Direction;

    const KEY: Key = (Direction::Rx, 2);

    #[test]
    fn thresholds_parse() {
        assert_eq!(Threshold::parse("200000pps"), Ok(Threshold::Pps(200_000.0)));
        assert_eq!(Threshold::parse("200kpps"), Ok(Threshold::Pps(200_000.0)));
        assert_eq!(Threshold::parse("1.5Mpps"), Ok(Threshold::Pps(1_500_000.0)));
        assert_eq!(Threshold::parse("50MB/s"), Ok(Threshold::BytesPerSec(50e6)));
        assert_eq!(Threshold::parse("4x"), Ok(Threshold::Relative(4.0)));
        assert!(Threshold::parse("0.5x").is_err());
        assert!(Threshold::parse("fast").is_err());
        assert!(Threshold::parse("kpps").is_err());
    }

    #[test]
    fn absolute_rates_become_per_bin_counts() {
        let b = Baseline::new(Threshold::Pps(50_000.0), 1_000_000);
        assert_eq!(b.limits(KEY), Limits { packets: 50, bytes: u64::MAX, edge_packets: 2 });
        let b = Baseline::new(Threshold::BytesPerSec(1e6), 100_000);
        assert_eq!((b.limits(KEY).packets, b.limits(KEY).bytes), (u32::MAX, 100));
    }

    #[test]
    fn relative_thresholds_follow_the_quiet_average() {
        let mut b = Baseline::new(Threshold::Relative(4.0), 1_000_000);
        for _ in 0..999 {
            b.push(KEY, 20, 1280);
        }
        assert_eq!(b.limits(KEY).packets, u32::MAX, "still warming up");
        b.push(KEY, 20, 1280);
        assert_eq!(b.limits(KEY), Limits { packets: 80, bytes: u64::MAX, edge_packets: 41 });
        b.push(KEY, 500, 32_000);
        assert_eq!(b.limits(KEY).packets, 80, "a bin over the limit leaves the average alone");
        let mut quiet = Baseline::new(Threshold::Relative(4.0), 1_000_000);
        for _ in 0..1000 {
            quiet.push(KEY, 0, 0);
        }
        assert_eq!(quiet.limits(KEY).packets, MIN_PACKETS);
    }
}
