//! A running agent as frames: the header, then once a second a snapshot of every exact counter
//! and of the kernel's own, the events the report uses as they come, and the pods whenever they
//! change.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::{DropRow, End, Frame, Header, KernelCounters, PortRow, Snapshot, TcpRow};
use crate::{
    agent::Agent, clock::Clock, error::Error, event::Event, kstat::SoftnetStat, ports,
    report::FamilyStatus, run::Sink, softnet::Knobs, tcp::decode::kind_name,
};

/// The timeline's resolution.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

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

pub struct Recorder<F> {
    pub frames: F,
    last_snapshot: Instant,
    pods: BTreeMap<u32, String>,
    /// The first failed counter read; collection goes on, the report says so.
    pub error: Option<Error>,
}

impl<F: Frames> Recorder<F> {
    /// Writes the header, the pods and the first snapshot: the baseline every count is from.
    pub fn start(agent: &Agent, mut frames: F) -> Result<Self, Error> {
        frames.frame(&Frame::Header(header(agent)));
        let mut r =
            Self { frames, last_snapshot: Instant::now(), pods: BTreeMap::new(), error: None };
        r.pods(agent);
        r.frames.frame(&Frame::Snapshot(snapshot(agent)?));
        Ok(r)
    }

    /// The last snapshot, the pods and the end frame.
    pub fn finish(
        mut self,
        agent: &mut Agent,
        complete: bool,
        note: Option<String>,
    ) -> (F, Option<Error>) {
        agent.names.pods.refresh();
        self.pods(agent);
        self.snapshot(agent);
        if let Some(h) = agent.bursts().and_then(|l| l.histograms.as_ref()) {
            self.frames.frame(&Frame::Rates(h.by_pod()));
        }
        let end =
            End { t_ns: Clock::monotonic_now(), complete, note, drop_samples: agent.drops_drained };
        self.frames.frame(&Frame::End(end));
        (self.frames, self.error)
    }

    fn snapshot(&mut self, agent: &Agent) {
        match snapshot(agent) {
            Ok(s) => self.frames.frame(&Frame::Snapshot(s)),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self.last_snapshot = Instant::now();
    }

    fn pods(&mut self, agent: &Agent) {
        let pods: BTreeMap<u32, String> =
            agent.names.pods.pods().map(|p| (p.netns, p.name.clone())).collect();
        if pods != self.pods {
            self.frames.frame(&Frame::Pods(pods.clone()));
            self.pods = pods;
        }
    }
}

impl<F: Frames> Sink for Recorder<F> {
    fn event(&mut self, event: Event) {
        // Drops are counted exactly by location instead; listen-queue and conntrack changes
        // are in every snapshot's kernel counters.
        if !matches!(event, Event::Drop(_) | Event::ListenQueue(_) | Event::Conntrack(_)) {
            self.frames.frame(&Frame::Event(event));
        }
    }

    fn tick(&mut self, agent: &mut Agent) {
        if self.last_snapshot.elapsed() >= SNAPSHOT_EVERY {
            // The agent refreshes its pods once a second; names must be current when counts
            // grow.
            self.pods(agent);
            self.snapshot(agent);
        }
    }

    fn stopped(&self) -> bool {
        self.frames.full()
    }
}

fn header(agent: &Agent) -> Header {
    let now = Clock::monotonic_now();
    let proc = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
    };
    Header {
        netprobe_version: env!("CARGO_PKG_VERSION").into(),
        hostname: proc("hostname"),
        kernel: proc("osrelease"),
        started: agent.names.clock.wall(now),
        started_unix_ns: agent.names.clock.unix_ns(now),
        started_monotonic_ns: now,
        pod: agent.pod_filter.as_ref().map(|(n, _)| n.clone()),
        pod_netns: agent.pod_filter.as_ref().map(|(_, n)| *n),
        families: agent
            .attached
            .iter()
            .map(|(family, a)| FamilyStatus {
                family: *family,
                tier: a.tier,
                skipped: a.skipped.clone(),
            })
            .collect(),
        reasons: agent.names.reasons.clone(),
    }
}

fn snapshot(agent: &Agent) -> Result<Snapshot, Error> {
    let kallsyms = &agent.names.kallsyms;
    Ok(Snapshot {
        t_ns: Clock::monotonic_now(),
        drops: agent
            .drop_counts()?
            .into_iter()
            .map(|(k, count)| DropRow {
                netns: k.netns,
                reason: k.reason,
                location: kallsyms.symbolize(k.location),
                count,
            })
            .collect(),
        tcp: agent
            .tcp_counts()?
            .into_iter()
            .map(|(k, count)| TcpRow { netns: k.netns, event: kind_name(k.kind).into(), count })
            .collect(),
        ports: agent
            .port_counts()?
            .into_iter()
            .map(|(k, count)| PortRow {
                netns: k.netns,
                op: ports::op_name(k.op).into(),
                errno: ports::errno_name(k.errno),
                count,
            })
            .collect(),
        softnet: agent.softnet()?,
        health: agent.health()?,
        kernel: KernelCounters {
            knobs: Knobs::read(),
            softnet_stat: SoftnetStat::read(),
            netns: agent.poller.counters().iter().map(|(n, c)| (*n, *c)).collect(),
        },
    })
}
