//! A running agent as frames: the header, then once a second a snapshot of every exact counter
//! and of the kernel's own, the events the report uses as they come, and the pods whenever they
//! change.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::file::Writer;
use crate::{
    agent::{Agent, AgentConfig},
    cli,
    clock::Clock,
    error::Error,
    event::Event,
    families::{linklocal, softnet::Knobs},
    family::{Family, FamilyStatus},
    frames::{End, Frame, Frames, Header, KernelCounters, Snapshot},
    kstat::SoftnetStat,
    pods::selection::Selection,
    pods::PodMeta,
    run::{self, Sink},
    tiers::Tier,
};

/// The timeline's resolution.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

pub struct Recorder<F> {
    pub frames: F,
    last_snapshot: Instant,
    pods: BTreeMap<u32, PodMeta>,
    selected: Option<std::collections::BTreeSet<u32>>,
    /// The first failed counter read; collection goes on, the report says so.
    pub error: Option<Error>,
}

impl<F: Frames> Recorder<F> {
    /// Writes the header, the pods and the first snapshot: the baseline every count is from.
    pub fn start(agent: &Agent, mut frames: F) -> Result<Self, Error> {
        frames.frame(&Frame::Header(header(agent)));
        let mut r = Self {
            frames,
            last_snapshot: Instant::now(),
            pods: BTreeMap::new(),
            selected: None,
            error: None,
        };
        r.pods(agent);
        r.selected(agent);
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
        agent.refresh_pods();
        self.pods(agent);
        self.selected(agent);
        self.snapshot(agent);
        if let Some(h) = agent.bursts().and_then(|l| l.histograms.as_ref()) {
            self.frames.frame(&Frame::Rates(h.by_pod()));
        }
        let end = End { t_ns: Clock::monotonic_now(), complete, note };
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

    fn selected(&mut self, agent: &Agent) {
        let now = agent.selected().cloned();
        if now.is_some() && now != self.selected {
            self.frames.frame(&Frame::Selected(now.clone().unwrap_or_default()));
            self.selected = now;
        }
    }

    fn pods(&mut self, agent: &Agent) {
        let pods: BTreeMap<u32, PodMeta> =
            agent.names().pods.pods().map(|p| (p.netns, p.meta.clone())).collect();
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
            self.selected(agent);
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
        started: agent.names().clock.wall(now),
        started_unix_ns: agent.names().clock.unix_ns(now),
        started_monotonic_ns: now,
        pod: (!agent.selection().is_all()).then(|| match agent.single_pod() {
            Some((name, _)) if agent.selection().pod.is_some() => name,
            _ => agent.selection().describe(),
        }),
        pod_netns: agent.single_pod().map(|(_, n)| n),
        families: agent
            .attached()
            .iter()
            .map(|(family, a)| FamilyStatus {
                family: *family,
                tier: a.tier,
                skipped: a.skipped.clone(),
                run_hooks: (*family == Family::Softnet).then(|| agent.softnet_runs()).flatten(),
            })
            .collect(),
        unavailable: agent.unavailable().to_vec(),
        reasons: agent.names().reasons.clone(),
        linklocal: agent.linklocal().cloned(),
    }
}

fn snapshot(agent: &Agent) -> Result<Snapshot, Error> {
    Ok(Snapshot {
        t_ns: Clock::monotonic_now(),
        rows: agent.rows()?,
        health: agent.health()?,
        kernel: KernelCounters {
            knobs: Knobs::read(),
            softnet_stat: SoftnetStat::read(),
            netns: agent.pod_counters().iter().map(|(n, c)| (*n, *c)).collect(),
            ena: crate::ena::read(),
        },
    })
}

/// What to collect live, and whether to record it too.
pub struct Collect {
    pub selection: Selection,
    pub cri_socket: Option<std::path::PathBuf>,
    pub events: Vec<Family>,
    pub tier: Option<Tier>,
    pub duration: std::time::Duration,
    pub record: Option<(std::path::PathBuf, u64)>,
    pub linklocal: linklocal::Settings,
}

/// Collects for the duration into `frames`, and into a recording file if asked. None when a
/// signal came before the agent was attached.
pub async fn live<F: Frames>(c: Collect, frames: F) -> anyhow::Result<Option<F>> {
    let mut shutdown = run::Shutdown::install()?;
    let writer = match &c.record {
        Some((path, cap)) => Some(
            Writer::create(path, *cap)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let config = AgentConfig {
        forget_after: crate::agent::FORGET_AFTER,
        selection: c.selection.clone(),
        cri_socket: c.cri_socket.clone(),
        families: cli::families(&c.events),
        tier: c.tier,
        bursts: cli::bursts_config(true),
        softnet_runs: cli::softnet_runs(&c.events),
        drop_samples: false,
        linklocal: c.linklocal.clone(),
    };
    let started = shutdown.start(move || Agent::start(config)).await;
    let Ok(Some(mut agent)) = started else {
        // Nothing was collected: leave no recording that holds nothing.
        if let Some((path, _)) = &c.record {
            let _ = std::fs::remove_file(path);
        }
        return started.map(|_| None);
    };
    let mut recorder = Recorder::start(&agent, (frames, writer))?;
    eprintln!(
        "netprobe: counting for {:.1?} ({}); Ctrl-C ends early",
        c.duration,
        agent.describe()
    );
    run::collect(&mut agent, Some(c.duration), &mut recorder, &mut shutdown).await?;
    let capped = recorder.frames.1.as_ref().is_some_and(Writer::capped);
    let note = capped.then(|| {
        let cap = c.record.as_ref().map_or(0, |r| r.1);
        format!("the recording reached its size cap of {cap} bytes and stopped early")
    });
    if let Some(n) = &note {
        eprintln!("netprobe: {n}; raise --max-size to record longer");
    }
    let ((frames, writer), error) = recorder.finish(&mut agent, !capped, note);
    if let (Some(w), Some((path, _))) = (writer, &c.record) {
        w.close().map_err(|e| anyhow::anyhow!("writing the recording {}: {e}", path.display()))?;
    }
    if let Some(e) = error {
        eprintln!("netprobe: some counter reads failed; the report may be short: {e}");
    }
    Ok(Some(frames))
}
