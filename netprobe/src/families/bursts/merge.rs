//! Per-CPU bursts into one burst per interface and direction: a burst whose packets land on
//! several CPUs (or move between them) arrives as one kernel record per CPU, and those that
//! overlap, touch, or are apart by no more than the merge gap are one burst: a sender that
//! stalls for a millisecond inside a burst has sent one burst, not three. A burst is handed
//! on once no CPU can add to it.

use std::collections::HashMap;

use super::Key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    pub key: Key,
    /// First and last bin numbers (start time / width), inclusive.
    pub first_bin: u64,
    pub last_bin: u64,
    pub packets: u64,
    pub bytes: u64,
    /// The busiest bin of one CPU, and that CPU.
    pub peak_packets: u64,
    pub cpu: u32,
}

impl Burst {
    /// Whether the two are one burst: `gap` quiet bins between them at most.
    fn touches(&self, other: &Burst, gap: u64) -> bool {
        self.key == other.key
            && self.first_bin <= other.last_bin + 1 + gap
            && other.first_bin <= self.last_bin + 1 + gap
    }

    fn absorb(&mut self, other: Burst) {
        self.first_bin = self.first_bin.min(other.first_bin);
        self.last_bin = self.last_bin.max(other.last_bin);
        self.packets += other.packets;
        self.bytes += other.bytes;
        if other.peak_packets > self.peak_packets {
            (self.peak_packets, self.cpu) = (other.peak_packets, other.cpu);
        }
    }
}

#[derive(Default)]
pub struct Merger {
    /// Quiet bins that do not end a burst (the merge gap, in bins).
    gap: u64,
    pending: Vec<Burst>,
    /// Per (CPU, interface): the first bins of the bursts taken from the map while the
    /// kernel still held them open. The kernel closes a burst only at that CPU's next packet
    /// there, which may be long after; its record, when it comes, is one already counted. By
    /// then the map may show the next burst, taken too: so all of them until their records.
    taken_open: HashMap<(u32, Key), Vec<u64>>,
    /// Records the kernel sent.
    pub records: u64,
}

impl Merger {
    /// Bursts apart by at most `gap` quiet bins are one.
    pub fn new(gap: u64) -> Self {
        Self { gap, ..Self::default() }
    }

    /// A burst the kernel closed and sent.
    pub fn record(&mut self, burst: Burst) {
        self.records += 1;
        let taken = self.taken_open.entry((burst.cpu, burst.key)).or_default();
        match taken.iter().position(|b| *b == burst.first_bin) {
            // A CPU's records come in order: one taken before this whose record never came
            // was lost, and none will.
            Some(i) => drop(taken.drain(..=i)),
            None => self.add(burst),
        }
    }

    /// A burst still open in the map after the bin following its last one ended: over, but
    /// not yet closed by the kernel.
    pub fn ended_open(&mut self, burst: Burst) {
        let taken = self.taken_open.entry((burst.cpu, burst.key)).or_default();
        if !taken.contains(&burst.first_bin) {
            taken.push(burst.first_bin);
            self.add(burst);
        }
    }

    fn add(&mut self, mut burst: Burst) {
        while let Some(i) = self.pending.iter().position(|p| p.touches(&burst, self.gap)) {
            burst.absorb(self.pending.swap_remove(i));
        }
        self.pending.push(burst);
    }

    /// Bursts that ended before bin `finished` (every bin before it is complete) and touch
    /// none of the bursts the map still shows `open`; all of them when `all`. By start.
    pub fn ready(&mut self, finished: u64, open: &[Burst], all: bool) -> Vec<Burst> {
        let (mut out, keep) = self.pending.drain(..).partition::<Vec<Burst>, _>(|p| {
            all || (p.last_bin + 1 + self.gap < finished
                && !open.iter().any(|o| o.touches(p, self.gap)))
        });
        self.pending = keep;
        out.sort_by_key(|b| b.first_bin);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::bursts::Direction;

    fn burst(cpu: u32, first_bin: u64, last_bin: u64, peak_packets: u64) -> Burst {
        Burst {
            key: (Direction::Rx, 2),
            first_bin,
            last_bin,
            packets: 100,
            bytes: 6400,
            peak_packets,
            cpu,
        }
    }

    #[test]
    fn per_cpu_records_of_one_burst_are_one_burst() {
        let mut m = Merger::default();
        m.record(burst(0, 10, 12, 60));
        m.record(burst(1, 13, 14, 80)); // moved CPU at a bin boundary
        m.record(burst(0, 30, 30, 50)); // another burst
        assert!(m.ready(14, &[], false).is_empty(), "the bin after 14 may still be written");
        let out = m.ready(40, &[], false);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].first_bin, out[0].last_bin, out[0].packets), (10, 14, 200));
        assert_eq!((out[0].peak_packets, out[0].cpu), (80, 1));
        assert_eq!(out[1].first_bin, 30);
    }

    #[test]
    fn short_gaps_inside_a_burst_do_not_split_it_and_longer_ones_do() {
        let mut m = Merger::new(3);
        m.record(burst(0, 10, 12, 60));
        m.record(burst(0, 15, 16, 90)); // 2 quiet bins: a stalled sender, the same burst
        m.record(burst(0, 20, 21, 40)); // 3 quiet bins: still the same
        m.record(burst(0, 26, 27, 40)); // 4 quiet bins: another burst
        assert!(m.ready(24, &[], false).is_empty(), "bins up to the gap after 21 may still join");
        let out = m.ready(40, &[], false);
        let spans: Vec<(u64, u64, u64)> =
            out.iter().map(|b| (b.first_bin, b.last_bin, b.packets)).collect();
        assert_eq!(spans, [(10, 21, 300), (26, 27, 100)]);
        assert_eq!(out[0].peak_packets, 90, "the real peak");
    }

    #[test]
    fn a_burst_waits_for_cpus_still_in_it() {
        let mut m = Merger::default();
        m.record(burst(0, 10, 12, 60));
        let open = [burst(1, 12, 20, 70)];
        assert!(m.ready(40, &open, false).is_empty());
        m.record(open[0]);
        assert_eq!(m.ready(40, &[], false).len(), 1);
    }

    #[test]
    fn an_ended_burst_taken_from_the_map_is_counted_once() {
        let mut m = Merger::default();
        m.ended_open(burst(0, 10, 12, 60));
        m.ended_open(burst(0, 10, 12, 60)); // seen again at the next read
        assert_eq!(m.ready(40, &[], false).len(), 1);
        m.record(burst(0, 10, 12, 60)); // the kernel closes it at last
        assert!(m.ready(80, &[], true).is_empty());
        assert_eq!(m.records, 1);
    }

    #[test]
    fn a_record_that_comes_after_the_next_burst_was_taken_is_still_counted_once() {
        // The map is read before the ring buffer: it shows the next burst, already over,
        // before the record of the one the kernel closed at that burst's first packet.
        let mut m = Merger::default();
        m.ended_open(burst(0, 10, 12, 60));
        m.ended_open(burst(0, 30, 32, 60));
        m.record(burst(0, 10, 12, 60));
        m.record(burst(0, 30, 32, 60));
        let spans: Vec<(u64, u64)> =
            m.ready(80, &[], true).iter().map(|b| (b.first_bin, b.packets)).collect();
        assert_eq!(spans, [(10, 100), (30, 100)]);
        assert!(m.taken_open.values().all(Vec::is_empty));
    }
}
