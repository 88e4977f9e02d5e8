//! Bursts as they happen, for every command: each read of the map feeds the histograms and
//! the thresholds and finds bursts the kernel still holds open; each kernel record joins the
//! merger; bursts that can no longer grow go out as events.

use netprobe_common::bursts::BurstRecord;

use super::{
    burst_of,
    histogram::Histograms,
    merge::{Burst, Merger},
    scope::Scope,
    threshold::{Baseline, Threshold},
    BinReader, BurstEvent, Direction,
};
use crate::{clock::Clock, error::Error, wire};

pub struct Live {
    pub reader: BinReader,
    baseline: Baseline,
    pub merger: Merger,
    /// Bursts open in the kernel at the last read, not yet over.
    open: Vec<Burst>,
    pub scope: Scope,
    /// The directions binned on every interface, as interfaces come; None when one interface
    /// was picked.
    every_interface: Option<Vec<Direction>>,
    /// Per-bin rates, when asked for (`netprobe bursts`).
    pub histograms: Option<Histograms>,
    /// The first read that failed; bins stop there.
    pub error: Option<Error>,
}

impl Live {
    pub fn start(
        mut reader: BinReader,
        threshold: Threshold,
        scope: Scope,
        every_interface: Option<Vec<Direction>>,
        histograms: bool,
        merge_gap_bins: u64,
    ) -> Result<Self, Error> {
        let baseline = Baseline::new(threshold, reader.bin_ns());
        for i in 0..reader.watched().len() {
            reader.set_limits(i, baseline.limits(reader.watched()[i]))?;
        }
        Ok(Self {
            reader,
            baseline,
            merger: Merger::new(merge_gap_bins),
            open: Vec::new(),
            scope,
            every_interface,
            histograms: histograms.then(Histograms::default),
            error: None,
        })
    }

    /// Takes in the interfaces of `scope` (the same netns, looked at again) that appeared
    /// since: a pod started after netprobe has its veth binned too. Interfaces that went away
    /// keep their names, for bursts still to come out.
    pub fn rescope(&mut self, scope: Scope) -> Result<(), Error> {
        let Some(directions) = &self.every_interface else { return Ok(()) };
        let before = self.reader.watched().len();
        self.reader.watch(scope.select(None, directions)?)?;
        for i in before..self.reader.watched().len() {
            let limits = self.baseline.limits(self.reader.watched()[i]);
            self.reader.set_limits(i, limits)?;
        }
        self.scope.interfaces.extend(scope.interfaces);
        Ok(())
    }

    /// Reads the map; the last read of a run (`to_end`) reads up to this moment. Call it
    /// before draining the ring buffer: a burst closed after this read is then in the ring,
    /// and one closed before is no longer shown open.
    pub fn read(&mut self, to_end: bool) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.try_read(to_end) {
            self.error = Some(e);
        }
    }

    fn try_read(&mut self, to_end: bool) -> Result<(), Error> {
        let reading = self.reader.read(to_end)?;
        for b in &reading.bins {
            self.baseline.push(b.key, b.packets, b.bytes);
        }
        if let Some(h) = &mut self.histograms {
            h.record(&reading.bins, &self.scope, self.reader.bin_ns());
        }
        for i in 0..self.reader.watched().len() {
            let limits = self.baseline.limits(self.reader.watched()[i]);
            self.reader.set_limits(i, limits)?;
        }
        let finished = self.reader.finished();
        self.open.clear();
        for b in reading.open {
            if b.last_bin + 1 < finished {
                self.merger.ended_open(b);
            } else {
                self.open.push(b);
            }
        }
        Ok(())
    }

    /// A burst record from the ring buffer.
    pub fn record(&mut self, bytes: &[u8]) {
        let Some(r) = wire::read::<BurstRecord>(bytes) else { return };
        let now = Clock::monotonic_now() / self.reader.bin_ns();
        if let Some(b) = burst_of(&r.burst, r.header.cpu, now) {
            self.merger.record(b);
        }
    }

    /// Bursts that can no longer grow; every one left when `all`.
    pub fn ready(&mut self, all: bool, clock: &Clock) -> Vec<BurstEvent> {
        if all {
            // Still open in the kernel at the end: over as far as this run is concerned.
            for b in std::mem::take(&mut self.open) {
                self.merger.ended_open(b);
            }
        }
        let bursts = self.merger.ready(self.reader.finished(), &self.open, all);
        bursts.iter().map(|b| self.event(b, clock)).collect()
    }

    fn event(&self, b: &Burst, clock: &Clock) -> BurstEvent {
        let bin_ns = self.reader.bin_ns();
        let start_ns = b.first_bin * bin_ns;
        let (direction, ifindex) = b.key;
        let iface = self.scope.interfaces.get(&ifindex);
        BurstEvent {
            time: clock.wall(start_ns),
            start_ns,
            pod: iface.map_or_else(|| "unknown".to_owned(), |i| i.pod.clone()),
            netns: iface.map_or(self.scope.netns, |i| i.netns),
            interface: self.scope.name(ifindex),
            direction,
            duration_us: ((b.last_bin + 1 - b.first_bin) * bin_ns) as f64 / 1e3,
            packets: b.packets,
            bytes: b.bytes,
            peak_pps: b.peak_packets as f64 * 1e9 / bin_ns as f64,
            cpu: b.cpu,
        }
    }
}
