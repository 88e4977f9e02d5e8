//! Frames to a report: the one engine behind the live report and `report --from`. Each
//! family's rows come from its own part (`families::sections!`).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use super::{
    findings,
    section::Context,
    timeline::{Metric, Subject, Timeline},
    PodInfo, PodKernel, Report, TimelineView, REPORT_VERSION,
};
use crate::{
    clock::Clock,
    families::Parts,
    frames::{End, Frame, Frames, Header, Snapshot},
    report::timeline::Pods,
};

#[derive(Default)]
pub struct Builder {
    header: Option<Header>,
    pods: Pods,
    first: Option<Snapshot>,
    last: Option<Snapshot>,
    timeline: Timeline,
    parts: Parts,
    end: Option<End>,
    /// Every netns the collection's selection matched, when it had one.
    selected: Option<BTreeSet<u32>>,
    /// `--idle-reset-min`, when given.
    idle_reset_min: Option<Duration>,
}

impl Frames for Builder {
    fn frame(&mut self, frame: &Frame) {
        match frame {
            Frame::Header(h) => self.header = Some(h.clone()),
            // Pods that went away keep their names.
            Frame::Pods(pods) => self.pods.update(pods),
            Frame::Snapshot(s) => self.snapshot(s),
            Frame::Selected(set) => self.selected.get_or_insert_default().extend(set),
            Frame::End(e) => self.end = Some(e.clone()),
            Frame::Event(_) | Frame::Rates(_) => {}
        }
        self.parts.frame(frame, &self.timeline);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no header frame: nothing was collected")]
    NoHeader,
    #[error("no counter snapshot: nothing was collected")]
    NoSnapshot,
    #[error("no pod named `{name}` in this recording. Its pods: {}", known.join(", "))]
    UnknownPod { name: String, known: Vec<String> },
}

impl Builder {
    /// How long an open connection must have been quiet for its reset to count as after
    /// idle (default `IDLE_RESET_MIN`).
    pub fn idle_reset_min(mut self, min: Duration) -> Self {
        self.idle_reset_min = Some(min);
        self
    }

    fn snapshot(&mut self, s: &Snapshot) {
        match (&self.last, &self.header) {
            (Some(last), Some(h)) => self.timeline.push(last, s, &h.reasons, &self.pods),
            _ => self.first = Some(s.clone()),
        }
        self.last = Some(s.clone());
    }

    /// The report; `pod` limits it to one pod (by name, or `netns:<inode>`).
    pub fn finish(self, pod: Option<&str>) -> Result<Report, BuildError> {
        let header = self.header.as_ref().ok_or(BuildError::NoHeader)?;
        let (Some(first), Some(last)) = (&self.first, &self.last) else {
            return Err(BuildError::NoSnapshot);
        };
        // Asked for now (replay), else what the collection selected: every pod that matched
        // at some point, or (version 1) the one pod it was limited to.
        let only: Option<BTreeSet<u32>> = match (pod, &header.pod) {
            (Some(name), _) => Some(BTreeSet::from([self.pods.lookup(name).ok_or_else(|| {
                BuildError::UnknownPod {
                    name: name.to_owned(),
                    known: self.pods.all().map(|(_, p)| p.display()).collect(),
                }
            })?])),
            (None, Some(_)) => Some(match (&self.selected, header.pod_netns) {
                (Some(set), _) => set.clone(),
                (None, n) => n.into_iter().collect(),
            }),
            (None, None) => None,
        };
        let pod = pod.map(str::to_owned).or_else(|| header.pod.clone());
        let mut c = Context::new(header, last, &self.timeline, &self.pods, only.as_ref());
        c.idle_reset_min = self.idle_reset_min.unwrap_or(c.idle_reset_min);
        let sections = self.parts.sections(&c);

        let clock = Clock::fixed(header.started_monotonic_ns, header.started_unix_ns);
        let end_ns = self.end.as_ref().map_or(last.t_ns, |e| e.t_ns.max(last.t_ns));
        let mut view = TimelineView::new(&self.timeline, &clock, |n| c.name(n), |s| c.keep(s));
        self.parts.series(&c, &mut view.series);
        let mut report = Report {
            version: REPORT_VERSION,
            from: clock.wall(first.t_ns),
            to: clock.wall(end_ns),
            duration_s: end_ns.saturating_sub(first.t_ns) as f64 / 1e9,
            host: header.hostname.clone(),
            kernel_release: header.kernel.clone(),
            complete: self.end.as_ref().is_none_or(|e| e.complete),
            note: self.end.as_ref().and_then(|e| e.note.clone()),
            pod,
            families: header.families.clone(),
            unavailable: header.unavailable.clone(),
            findings: Vec::new(),
            sections,
            kernel: std::mem::take(&mut c.kernel).into_values().collect(),
            timeline: view,
            samples: self.parts.samples(),
            health: last.health,
            pods: Vec::new(),
        };
        report.findings = findings::find(&report, &self.timeline, &clock, |s| c.keep(s));
        report.pods = self.pods_named(&report);
        Ok(report)
    }

    /// The pods that rows, findings and the timeline of `r` name.
    fn pods_named(&self, r: &Report) -> Vec<PodInfo> {
        let mut named: BTreeSet<&str> =
            r.timeline.series.iter().filter_map(|s| s.pod.as_deref()).collect();
        named.extend(r.findings.iter().flat_map(|f| f.pods.iter().map(String::as_str)));
        named.extend(r.sections.pods());
        let mut out: Vec<PodInfo> = self
            .pods
            .all()
            .filter(|(_, m)| named.contains(m.display().as_str()))
            .map(|(n, m)| PodInfo { pod: m.display(), netns: *n, meta: m.clone() })
            .collect();
        out.sort_by(|a, b| a.pod.cmp(&b.pod));
        out
    }
}

/// The kernel's own counters per pod, over the report, by series id.
pub(super) fn kernel_rows(c: &Context) -> BTreeMap<u32, PodKernel> {
    let mut kernel: BTreeMap<u32, PodKernel> = BTreeMap::new();
    for (key, values) in &c.timeline.series {
        let (metric, Subject::Netns(netns), _) = key else { continue };
        let total: u64 = values.iter().sum();
        if total == 0 || !c.keep(Subject::Netns(*netns)) {
            continue;
        }
        let row = kernel.entry(*netns).or_insert_with(|| PodKernel {
            pod: c.name(*netns),
            netns: c.inode(*netns),
            ..Default::default()
        });
        let slot = match *metric {
            Metric::KERNEL_TCP_OUT_SEGS => &mut row.tcp_out_segs,
            Metric::KERNEL_TCP_RETRANS_SEGS => &mut row.tcp_retrans_segs,
            Metric::KERNEL_TCP_OUT_RSTS => &mut row.tcp_out_rsts,
            Metric::KERNEL_TCP_ESTAB_RESETS => &mut row.tcp_estab_resets,
            Metric::KERNEL_TCP_SYN_RETRANS => &mut row.tcp_syn_retrans,
            Metric::KERNEL_LISTEN_OVERFLOWS => &mut row.listen_overflows,
            Metric::KERNEL_LISTEN_DROPS => &mut row.listen_drops,
            Metric::KERNEL_UDP_NO_PORTS => &mut row.udp_no_ports,
            Metric::KERNEL_IP_PACKETS => &mut row.ip_packets,
            Metric::KERNEL_CONNTRACK_DROP => &mut row.conntrack_drop,
            Metric::KERNEL_CONNTRACK_INSERT_FAILED => &mut row.conntrack_insert_failed,
            Metric::KERNEL_CONNTRACK_EARLY_DROP => &mut row.conntrack_early_drop,
            Metric::KERNEL_CONNTRACK_INVALID => &mut row.conntrack_invalid,
            _ => continue,
        };
        *slot = total;
    }
    kernel
}
