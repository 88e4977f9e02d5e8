//! A family's part of the report: what it keeps from the frames (`Part`), the rows it adds
//! (`Section`, flattened into the report's JSON in registration order), its tables in text and
//! its charts in HTML. `families::sections!` lists them once.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use super::{
    timeline::{Add, Pods, SeriesView, Subject, Timeline},
    PodKernel, Report,
};
use crate::{
    family::Family,
    frames::{Frame, Header, Snapshot},
    pods::{self, PodMeta},
    reasons::Reasons,
};

/// What a family keeps while frames go by.
pub trait Part: Default {
    type Section: Section;

    /// Adds its snapshot rows' cumulative values to the timeline (`families/<name>/timeline.rs`).
    fn totals(_s: &Snapshot, _reasons: &Reasons, _add: &mut Add) {}

    /// Every frame, after the builder has taken it: `timeline` includes a snapshot's growth.
    fn frame(&mut self, _frame: &Frame, _timeline: &Timeline) {}

    /// Samples of this family seen (the report's `samples`).
    fn samples(&self) -> u64 {
        0
    }

    /// Series the timeline view adds beyond the counters' (bursts from burst events).
    fn series(&self, _c: &Context, _out: &mut Vec<SeriesView>) {}

    fn section(&self, c: &Context) -> Self::Section;
}

/// A family's rows in the report.
pub trait Section: serde::Serialize {
    /// Where its tables go in `--format text` and its charts in `--format html`, lowest first:
    /// the layout reads by topic, which is not the JSON's field order.
    const TEXT: u8;
    const HTML: u8 = u8::MAX;

    fn text(&self, _r: &Report) -> String {
        String::new()
    }

    fn html(&self, _r: &Report) -> String {
        String::new()
    }

    /// The pods its sampled rows name, for the report's `pods`.
    fn pods(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// What a section is built from.
pub struct Context<'a> {
    pub header: &'a Header,
    pub last: &'a Snapshot,
    pub timeline: &'a Timeline,
    /// Each pod's own kernel counters over the report (the report's `kernel`), by series id.
    pub kernel: BTreeMap<u32, PodKernel>,
    pods: &'a Pods,
    /// The netns inodes the report is limited to.
    only: Option<&'a BTreeSet<u32>>,
    /// `--idle-reset-min`: how long an open connection must have been quiet for its reset
    /// to count as after idle.
    pub idle_reset_min: Duration,
}

impl<'a> Context<'a> {
    pub fn new(
        header: &'a Header,
        last: &'a Snapshot,
        timeline: &'a Timeline,
        pods: &'a Pods,
        only: Option<&'a BTreeSet<u32>>,
    ) -> Self {
        let mut c = Self {
            header,
            last,
            timeline,
            kernel: BTreeMap::new(),
            pods,
            only,
            idle_reset_min: crate::families::tcp::patterns::IDLE_RESET_MIN,
        };
        c.kernel = super::build::kernel_rows(&c);
        c
    }

    /// Whether `family` ran.
    pub fn ran(&self, family: Family) -> bool {
        self.header.families.iter().any(|f| f.family == family)
    }

    /// Whether a series is in the report (its pod is selected, or it is a CPU's).
    pub fn keep(&self, s: Subject) -> bool {
        match (s, self.only) {
            (Subject::Netns(id), Some(set)) => set.contains(&self.pods.inode(id)),
            _ => true,
        }
    }

    /// Whether a sampled row's netns is in the report.
    pub fn in_scope(&self, netns: u32) -> bool {
        self.only.is_none_or(|set| set.contains(&netns))
    }

    /// Whether the report is limited to some pods.
    pub fn limited(&self) -> bool {
        self.only.is_some()
    }

    /// The pod behind a series id (a netns inode, or a pod on a reused inode).
    pub fn name(&self, id: u32) -> String {
        let known = self.timeline.names.get(&id).cloned();
        known
            .or_else(|| self.pods.meta(id).map(PodMeta::display))
            .unwrap_or_else(|| pods::unnamed(self.pods.inode(id)))
    }

    /// The series id of a subject: a netns's, or 0 for a CPU.
    pub fn id_of(s: Subject) -> u32 {
        match s {
            Subject::Netns(n) => n,
            Subject::Cpu(_) => 0,
        }
    }

    /// The netns inode behind a series id.
    pub fn inode(&self, id: u32) -> u32 {
        self.pods.inode(id)
    }

    /// The netns of a pod by name (`namespace/name`, a unique bare name, or `netns:<inode>`).
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.pods.lookup(name)
    }
}
