//! What a report is made from, as a stream of frames: a header with the kernel's names, exact
//! counter snapshots once a second, the sampled events, and the pods. A live report feeds the
//! frames straight to the report builder; `netprobe record` writes them to a file
//! (`record/file.rs`, format in docs/recording.md) that `report --from` feeds to the same
//! builder. Both sides depend on this module, not on each other.

use std::collections::BTreeMap;

use crate::{
    event::Event,
    families::{bursts::histogram::PodRates, softnet::Knobs, Rows},
    family::{FamilyStatus, FamilyUnavailable},
    health::Health,
    kstat::{NetnsCounters, SoftnetStat},
    pods::PodMeta,
    reasons::Reasons,
};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
// Externally tagged: an internally tagged enum buffers its content, which loses the integer
// keys of maps on the way back.
#[serde(rename_all = "snake_case")]
pub enum Frame {
    Header(Header),
    /// Network namespace inode to pod; pods seen before stay valid.
    Pods(BTreeMap<u32, PodMeta>),
    Snapshot(Snapshot),
    Event(Event),
    /// At the end, with the bursts family: per-bin rate distributions per pod and direction.
    Rates(Vec<PodRates>),
    /// The netns a selection (`--pod`, `-n`, `-l`) matches, whenever that changes.
    Selected(std::collections::BTreeSet<u32>),
    End(End),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    pub netprobe_version: String,
    pub hostname: String,
    /// `uname -r` of the recorded kernel.
    pub kernel: String,
    /// When collection started, on both clocks: events carry CLOCK_MONOTONIC times.
    pub started: String,
    pub started_unix_ns: u64,
    pub started_monotonic_ns: u64,
    /// What samples were filtered to in the kernel (the pod, or the selection), if anything;
    /// `Selected` frames say which netns that was.
    pub pod: Option<String>,
    /// When the selection was one pod.
    pub pod_netns: Option<u32>,
    pub families: Vec<FamilyStatus>,
    /// Families asked for that could not run on this kernel (absent in older recordings).
    #[serde(default)]
    pub unavailable: Vec<FamilyUnavailable>,
    /// The kernel's drop reasons, value to name, from its BTF.
    pub reasons: Reasons,
    /// With the linklocal family: the cluster DNS IPs counted and the limit in force.
    #[serde(default)]
    pub linklocal: Option<crate::families::linklocal::Settings>,
}

/// Every exact counter since collection started (not since the previous snapshot).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// CLOCK_MONOTONIC time of the reading.
    pub t_ns: u64,
    /// Each family's exact counters (`families::snapshot_rows!`).
    #[serde(flatten)]
    pub rows: Rows,
    pub health: Health,
    /// The kernel's own counters, as they stand (not since start).
    pub kernel: KernelCounters,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KernelCounters {
    pub knobs: Knobs,
    pub softnet_stat: Vec<SoftnetStat>,
    /// Per pod, read inside its netns.
    pub netns: BTreeMap<u32, NetnsCounters>,
    /// The node's interfaces with ENA allowance counters (absent in older recordings).
    #[serde(default)]
    pub ena: Vec<crate::ena::Counters>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct End {
    pub t_ns: u64,
    /// False when the recording stopped early, e.g. at its size cap.
    pub complete: bool,
    pub note: Option<String>,
}

/// Where frames go: the report builder, a recording file, or both.
pub trait Frames {
    fn frame(&mut self, frame: &Frame);
    /// True once no more frames can be taken (a recording at its size cap).
    fn full(&self) -> bool {
        false
    }
}

impl<A: Frames, B: Frames> Frames for (A, Option<B>) {
    fn frame(&mut self, frame: &Frame) {
        self.0.frame(frame);
        if let Some(b) = &mut self.1 {
            b.frame(frame);
        }
    }

    fn full(&self) -> bool {
        self.0.full() || self.1.as_ref().is_some_and(B::full)
    }
}

/// Frames for tests.
#[cfg(test)]
pub mod fixture {
    use super::*;

    pub fn header(families: &[crate::family::Family]) -> Header {
        Header {
            netprobe_version: "0.1.0".into(),
            hostname: "node-1".into(),
            kernel: "6.18.0".into(),
            started: "2026-11-23T00:00:00.000000Z".into(),
            started_unix_ns: 1_800_000_000_000_000_000,
            started_monotonic_ns: 1_000_000_000,
            pod: None,
            pod_netns: None,
            families: families
                .iter()
                .map(|f| FamilyStatus {
                    family: *f,
                    tier: crate::tiers::Tier::TpBtf,
                    skipped: Vec::new(),
                    run_hooks: None,
                })
                .collect(),
            unavailable: Vec::new(),
            reasons: crate::reasons::tests::fixture_reasons(),
            linklocal: None,
        }
    }
}
