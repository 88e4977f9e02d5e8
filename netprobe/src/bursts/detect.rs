//! Bursts from bins: runs of consecutive bins at or above the threshold, per interface.

use std::collections::HashMap;

use super::BinTotal;

/// When a bin counts as part of a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// At least this many packets per second in the bin.
    Pps(f64),
    /// At least k times the interface's recent average rate, and at least `MIN_PACKETS`;
    /// nothing is a burst before one averaging window of quiet bins has been seen.
    Relative(f64),
}

/// A relative threshold never fires on fewer packets than this in a bin.
const MIN_PACKETS: u64 = 10;
/// A bin just before a burst joins it when it was this many times the quiet average: a burst
/// rarely starts on a bin boundary, and its first, partial bin is where it began.
const EDGE_FACTOR: f64 = 2.0;
/// How far back the recent average looks.
const AVERAGE_OVER_S: f64 = 1.0;

impl Threshold {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("`{text}`: give a rate like 200000pps or 200kpps, or a factor like 4x");
        if let Some(k) = text.strip_suffix('x') {
            let k: f64 = k.parse().map_err(|_| bad())?;
            return if k > 1.0 {
                Ok(Self::Relative(k))
            } else {
                Err(format!("`{text}`: the factor must be above 1"))
            };
        }
        let num = text.strip_suffix("pps").ok_or_else(bad)?;
        let (num, scale) = match num.strip_suffix('k') {
            Some(n) => (n, 1e3),
            None => match num.strip_suffix('M') {
                Some(n) => (n, 1e6),
                None => (num, 1.0),
            },
        };
        let pps: f64 = num.parse().map_err(|_| bad())?;
        if pps > 0.0 {
            Ok(Self::Pps(pps * scale))
        } else {
            Err(bad())
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Burst {
    pub ifindex: u32,
    /// First bin number and bin count.
    pub first_bin: u64,
    pub bins: u64,
    pub packets: u64,
    pub bytes: u64,
    pub peak_pps: f64,
    /// The CPU that received most of the peak bin.
    pub cpu: u32,
}

#[derive(Default)]
struct Iface {
    /// The bin before this one: a burst's leading edge, if it was busy.
    prev: Option<BinTotal>,
    average_pps: f64,
    /// Quiet bins seen; a relative threshold waits for one averaging window of them.
    quiet_bins: u64,
    open: Option<Burst>,
}

pub struct Detector {
    threshold: Threshold,
    bin_s: f64,
    ifaces: HashMap<u32, Iface>,
}

impl Detector {
    pub fn new(threshold: Threshold, bin_ns: u64) -> Self {
        Self { threshold, bin_s: bin_ns as f64 / 1e9, ifaces: HashMap::new() }
    }

    /// Feeds one bin (in order per interface); returns the burst it closed, if any.
    pub fn push(&mut self, bin: &BinTotal) -> Option<Burst> {
        let iface = self.ifaces.entry(bin.ifindex).or_default();
        let prev = iface.prev.replace(*bin);
        let pps = bin.packets as f64 / self.bin_s;
        let window = (AVERAGE_OVER_S / self.bin_s).ceil() as u64;
        let hot = match self.threshold {
            Threshold::Pps(limit) => pps >= limit,
            Threshold::Relative(k) => {
                iface.quiet_bins >= window
                    && bin.packets >= MIN_PACKETS
                    && pps >= k * iface.average_pps
            }
        };
        if hot {
            let edge = prev.filter(|p| {
                p.id + 1 == bin.id
                    && p.packets >= 2
                    && p.packets as f64 / self.bin_s > EDGE_FACTOR * iface.average_pps
            });
            let b = iface.open.get_or_insert_with(|| {
                let mut b = Burst {
                    ifindex: bin.ifindex,
                    first_bin: bin.id,
                    bins: 0,
                    packets: 0,
                    bytes: 0,
                    peak_pps: 0.0,
                    cpu: bin.cpu,
                };
                if let Some(e) = edge {
                    (b.first_bin, b.bins, b.packets, b.bytes) = (e.id, 1, e.packets, e.bytes);
                }
                b
            });
            b.bins += 1;
            b.packets += bin.packets;
            b.bytes += bin.bytes;
            if pps > b.peak_pps {
                (b.peak_pps, b.cpu) = (pps, bin.cpu);
            }
            return None;
        }
        // The average follows the quiet bins only, so a burst does not raise its own bar: a
        // plain mean over the first window, then exponentially weighted over one window.
        iface.quiet_bins += 1;
        let alpha = 1.0 / iface.quiet_bins.min(window) as f64;
        iface.average_pps += alpha * (pps - iface.average_pps);
        iface.open.take()
    }

    /// Bursts still open at the end of a collection.
    pub fn finish(&mut self) -> Vec<Burst> {
        self.ifaces.values_mut().filter_map(|i| i.open.take()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(id: u64, packets: u64) -> BinTotal {
        BinTotal { ifindex: 2, id, packets, bytes: packets * 64, cpu: 1 }
    }

    #[test]
    fn thresholds_parse() {
        assert_eq!(Threshold::parse("200000pps"), Ok(Threshold::Pps(200_000.0)));
        assert_eq!(Threshold::parse("200kpps"), Ok(Threshold::Pps(200_000.0)));
        assert_eq!(Threshold::parse("1.5Mpps"), Ok(Threshold::Pps(1_500_000.0)));
        assert_eq!(Threshold::parse("4x"), Ok(Threshold::Relative(4.0)));
        assert!(Threshold::parse("0.5x").is_err());
        assert!(Threshold::parse("fast").is_err());
    }

    #[test]
    fn a_run_of_hot_bins_is_one_burst() {
        let mut d = Detector::new(Threshold::Pps(50_000.0), 1_000_000);
        let closed: Vec<Burst> = [2, 3, 80, 120, 60, 2, 1]
            .iter()
            .enumerate()
            .filter_map(|(i, p)| d.push(&bin(i as u64, *p)))
            .collect();
        assert_eq!(closed.len(), 1);
        let b = &closed[0];
        assert_eq!((b.first_bin, b.bins, b.packets), (2, 3, 260));
        assert_eq!(b.peak_pps, 120_000.0);
    }

    #[test]
    fn a_busy_bin_before_a_burst_is_its_leading_edge() {
        let mut d = Detector::new(Threshold::Pps(50_000.0), 1_000_000);
        for i in 0..100 {
            d.push(&bin(i, 2));
        }
        // 30 packets: above the background, below the threshold; then the burst proper.
        assert_eq!(d.push(&bin(100, 30)), None);
        assert_eq!(d.push(&bin(101, 90)), None);
        let b = d.push(&bin(102, 2)).expect("closed");
        assert_eq!((b.first_bin, b.bins, b.packets), (100, 2, 120));
    }

    #[test]
    fn relative_thresholds_follow_the_quiet_average() {
        let mut d = Detector::new(Threshold::Relative(4.0), 1_000_000);
        for i in 0..2000 {
            assert_eq!(d.push(&bin(i, 20)), None, "steady traffic is no burst");
        }
        assert_eq!(d.push(&bin(2000, 70)), None, "3.5x is below 4x");
        assert_eq!(d.push(&bin(2001, 100)), None, "5x opens a burst");
        assert!(d.push(&bin(2002, 20)).is_some(), "and a quiet bin closes it");
        assert!(d.finish().is_empty());
    }
}
