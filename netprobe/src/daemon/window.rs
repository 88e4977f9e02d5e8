//! The agent's memory: the frames `record` would write, kept for `--retain` and at most
//! `--max-memory`, oldest first out. Any window within it replays through the report builder
//! like a recording, so the agent answers "what was wrong at 3 a.m." with the same engine.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use crate::{
    clock::Clock,
    frames::{End, Frame, Frames, Header},
    pods::PodMeta,
};

/// A frame as kept: when it arrived and what it costs.
struct Kept {
    t_ns: u64,
    frame: Arc<Frame>,
    bytes: usize,
}

pub struct Retained {
    header: Option<Arc<Frame>>,
    /// Every pod seen while retained, so that a window names pods that are gone since, and
    /// when it went (None: it is live). A pod gone before the oldest frame kept goes too.
    pods: BTreeMap<u32, (PodMeta, Option<u64>)>,
    frames: VecDeque<Kept>,
    bytes: usize,
    retain_ns: u64,
    max_bytes: usize,
    /// Frames that went out early to stay under `max_bytes`.
    pub evicted_for_memory: u64,
}

/// What every kept frame takes besides what its fields point to: its place in the deque and
/// its Arc's allocation, two counts and the frame at the size of its largest variant (320
/// bytes now, so the 400 bytes once counted per event did not cover its strings).
const FRAME_BYTES: usize = size_of::<Kept>() + 2 * size_of::<usize>() + size_of::<Frame>();

/// Events are not measured one by one (that would serialise each): what their strings (time,
/// pod, errno, comm, addresses...) typically take on the heap, six of the allocator's 32-byte
/// size class.
const EVENT_STRINGS: usize = 192;

impl Retained {
    pub fn new(retain_ns: u64, max_bytes: usize) -> Self {
        Self {
            header: None,
            pods: Default::default(),
            frames: VecDeque::new(),
            bytes: 0,
            retain_ns,
            max_bytes,
            evicted_for_memory: 0,
        }
    }

    /// How far back a window can reach now, in seconds.
    pub fn seconds(&self) -> f64 {
        let first = self.frames.iter().find(|k| matches!(*k.frame, Frame::Snapshot(_)));
        first.map_or(0.0, |k| Clock::monotonic_now().saturating_sub(k.t_ns) as f64 / 1e9)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The last counter snapshot.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        let last = self.frames.iter().rev().find(|k| matches!(*k.frame, Frame::Snapshot(_)));
        last.map(|k| k.frame.clone())
    }

    pub fn header(&self) -> Option<&Header> {
        match self.header.as_deref() {
            Some(Frame::Header(h)) => Some(h),
            _ => None,
        }
    }

    /// The frames of the last `window_ns` as a recording: the header, every pod seen, the
    /// last snapshot before the window (its baseline), what came after, and an end frame.
    /// None until there are two snapshots.
    pub fn window(&self, window_ns: u64) -> Option<Vec<Arc<Frame>>> {
        let now = Clock::monotonic_now();
        let from = now.saturating_sub(window_ns);
        let snapshots: Vec<usize> = (0..self.frames.len())
            .filter(|i| matches!(*self.frames[*i].frame, Frame::Snapshot(_)))
            .collect();
        if snapshots.len() < 2 {
            return None;
        }
        // The baseline: the newest snapshot at or before the window's start, else the oldest.
        let base = snapshots.iter().rev().find(|i| self.frames[**i].t_ns <= from);
        let base = *base.unwrap_or(&snapshots[0]);
        let base = base.min(snapshots[snapshots.len() - 2]);
        let pods = self.pods.iter().map(|(n, (pod, _))| (*n, pod.clone())).collect();
        let mut out = vec![self.header.clone()?, Arc::new(Frame::Pods(pods))];
        out.extend(self.frames.iter().skip(base).map(|k| k.frame.clone()));
        let end = End { t_ns: now, complete: true, note: None };
        out.push(Arc::new(Frame::End(end)));
        Some(out)
    }

    fn evict(&mut self, now: u64) {
        let old = now.saturating_sub(self.retain_ns);
        // Two snapshots always stay: a window needs a baseline and an end.
        while self.frames.len() > 2 {
            let front = &self.frames[0];
            let over = self.bytes > self.max_bytes;
            if front.t_ns >= old && !over {
                break;
            }
            self.evicted_for_memory += u64::from(over && front.t_ns >= old);
            let gone = self.frames.pop_front().expect("checked");
            self.bytes -= gone.bytes;
        }
        let oldest = self.frames.front().map_or(now, |k| k.t_ns);
        self.pods.retain(|_, (_, gone)| gone.is_none_or(|t| t >= oldest));
    }

    fn pods(&mut self, now: BTreeMap<u32, PodMeta>, t_ns: u64) {
        for (netns, (_, gone)) in self.pods.iter_mut() {
            if !now.contains_key(netns) {
                gone.get_or_insert(t_ns);
            }
        }
        self.pods.extend(now.into_iter().map(|(n, pod)| (n, (pod, None))));
    }
}

impl Frames for Retained {
    fn frame(&mut self, frame: &Frame) {
        let now = Clock::monotonic_now();
        match frame {
            Frame::Header(_) => self.header = Some(Arc::new(frame.clone())),
            Frame::Pods(p) => self.pods(p.clone(), now),
            // An agent never ends; a window gets its own end frame.
            // The agent selects every pod.
            Frame::End(_) | Frame::Rates(_) | Frame::Selected(_) => {}
            Frame::Snapshot(_) | Frame::Event(_) => {
                let bytes = FRAME_BYTES
                    + match frame {
                        Frame::Snapshot(_) => serde_json::to_vec(frame).map_or(0, |j| j.len()),
                        _ => EVENT_STRINGS,
                    };
                self.frames.push_back(Kept { t_ns: now, frame: Arc::new(frame.clone()), bytes });
                self.bytes += bytes;
                self.evict(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{family::Family, frames::fixture, frames::Snapshot};

    #[test]
    fn memory_and_age_bound_what_is_kept_but_two_snapshots_stay() {
        let mut r = Retained::new(u64::MAX, 1);
        r.frame(&Frame::Header(fixture::header(&[Family::Drops])));
        for i in 0..5 {
            r.frame(&Frame::Snapshot(Snapshot { t_ns: i, ..Default::default() }));
        }
        assert_eq!(r.frames.len(), 2);
        assert_eq!(r.evicted_for_memory, 3);
        let w = r.window(1_000_000_000).expect("two snapshots");
        assert!(matches!(*w[0], Frame::Header(_)));
        assert!(matches!(*w[w.len() - 1], Frame::End(_)));
        assert_eq!(w.iter().filter(|f| matches!(***f, Frame::Snapshot(_))).count(), 2);

        let mut young = Retained::new(0, usize::MAX);
        for _ in 0..4 {
            young.frame(&Frame::Snapshot(Snapshot::default()));
        }
        assert_eq!(young.frames.len(), 2, "older than --retain");
    }

    #[test]
    fn a_pod_gone_before_the_oldest_frame_leaves_and_a_quiet_live_one_stays() {
        let meta = |n: &str| serde_json::from_value::<PodMeta>(n.into()).expect("a name");
        let mut r = Retained::new(0, usize::MAX);
        r.frame(&Frame::Header(fixture::header(&[Family::Drops])));
        r.frame(&Frame::Pods(BTreeMap::from([(1, meta("quiet")), (2, meta("gone"))])));
        r.frame(&Frame::Snapshot(Snapshot::default()));
        r.frame(&Frame::Pods(BTreeMap::from([(1, meta("quiet"))])));
        assert!(r.pods.contains_key(&2), "a frame of its time is still kept");
        for _ in 0..3 {
            r.frame(&Frame::Snapshot(Snapshot::default()));
        }
        assert_eq!(r.pods.keys().collect::<Vec<_>>(), [&1]);
        let w = r.window(u64::MAX).expect("two snapshots");
        assert!(matches!(&*w[1], Frame::Pods(p) if p.len() == 1));
    }
}
