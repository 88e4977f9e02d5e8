//! `netprobe agent`: what the always-on agent keeps (`window`), what it exports (`metrics`)
//! and how it answers (`http`). The collection itself is the one `report` and `record` use:
//! a `Recorder` whose frames go into the retained window instead of a file.

pub mod http;
pub mod metrics;
pub mod window;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use crate::{
    clock::Clock,
    families::bursts::metrics::BinRates,
    frames::{Frame, Frames},
    pods::PodMeta,
    report::{BuildError, Builder, Report},
};

/// The window `/metrics` takes findings from.
pub const FINDINGS_WINDOW: Duration = Duration::from_secs(300);

/// What the collection loop and the HTTP handlers share.
pub struct Shared {
    retained: Mutex<window::Retained>,
    pods: Mutex<PodTimes>,
    ready: AtomicBool,
    /// A bearer token the report, record and findings endpoints require.
    pub token: Option<String>,
    /// Reports being built at once; more are refused (503), so memory stays bounded.
    pub reports: tokio::sync::Semaphore,
    last_scrape_ns: AtomicU64,
    /// Bursts found per netns since start, and the per-bin rates (with the bursts family).
    bursts: Mutex<BTreeMap<u32, u64>>,
    bin_rates: Mutex<Vec<BinRates>>,
    retain: Duration,
    /// How long a deleted pod's series stay exported, for late scrapes and alerts to resolve.
    pod_grace: Duration,
}

/// The pods now, and when the gone ones went.
#[derive(Default)]
struct PodTimes {
    now: BTreeMap<u32, PodMeta>,
    gone: HashMap<u32, (PodMeta, u64)>,
}

/// Why a window cannot be answered (a 4xx).
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("the agent keeps only the last {retain:.0?} (--retain); ask for a shorter window")]
    TooLong { retain: Duration },
    #[error("the agent has not collected two snapshots yet; ask again in a second or two")]
    NotYet,
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl Shared {
    pub fn new(
        retain: Duration,
        max_bytes: usize,
        token: Option<String>,
        pod_grace: Duration,
    ) -> Self {
        Self {
            retained: Mutex::new(window::Retained::new(retain.as_nanos() as u64, max_bytes)),
            pods: Mutex::default(),
            ready: AtomicBool::new(false),
            token,
            reports: tokio::sync::Semaphore::new(2),
            last_scrape_ns: AtomicU64::new(0),
            bursts: Mutex::default(),
            bin_rates: Mutex::default(),
            retain,
            pod_grace,
        }
    }

    /// Programs attached and pods resolved: `/readyz` says so from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The frames of the last `window`, as a recording would hold them.
    pub fn frames(&self, window: Duration) -> Result<Vec<Arc<Frame>>, WindowError> {
        if window > self.retain {
            return Err(WindowError::TooLong { retain: self.retain });
        }
        let retained = self.retained.lock().expect("not poisoned");
        retained.window(window.as_nanos() as u64).ok_or(WindowError::NotYet)
    }

    /// The report of the last `window`, by the same builder as `netprobe report`.
    pub fn report(&self, window: Duration, pod: Option<&str>) -> Result<Report, WindowError> {
        let mut builder = Builder::default();
        for frame in self.frames(window)? {
            builder.frame(&frame);
        }
        Ok(builder.finish(pod)?)
    }

    /// The bursts family's per-bin rates as they stand (the agent sets them once a second).
    pub fn set_bin_rates(&self, rates: Vec<BinRates>) {
        *self.bin_rates.lock().expect("not poisoned") = rates;
    }

    /// The `/metrics` exposition.
    pub fn metrics(&self) -> Result<String, String> {
        let started = Clock::monotonic_now();
        let findings = match self.report(FINDINGS_WINDOW.min(self.retain), None) {
            Ok(r) => r.findings,
            Err(WindowError::NotYet) => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        let (header, snapshot, seconds, bytes) = {
            let r = self.retained.lock().expect("not poisoned");
            let header = r.header().cloned().ok_or("no header yet")?;
            (header, r.latest().ok_or("no snapshot yet")?, r.seconds(), r.bytes())
        };
        let Frame::Snapshot(snapshot) = &*snapshot else { unreachable!("latest is a snapshot") };
        let pods = self.exported_pods();
        let text = metrics::exposition(&metrics::Inputs {
            header: &header,
            snapshot,
            pods: &pods,
            findings: &findings,
            bursts: &self.bursts.lock().expect("not poisoned"),
            bin_rates: &self.bin_rates.lock().expect("not poisoned"),
            retained_seconds: seconds,
            retained_bytes: bytes,
            last_scrape_seconds: self.last_scrape_ns.load(Ordering::Relaxed) as f64 / 1e9,
        })
        .map_err(|e| e.to_string())?;
        let took = Clock::monotonic_now().saturating_sub(started);
        self.last_scrape_ns.store(took, Ordering::Relaxed);
        Ok(text)
    }

    /// Live pods, and deleted ones within their grace period.
    fn exported_pods(&self) -> BTreeMap<u32, PodMeta> {
        let now = Clock::monotonic_now();
        let grace = self.pod_grace.as_nanos() as u64;
        let p = self.pods.lock().expect("not poisoned");
        let mut out = p.now.clone();
        for (netns, (name, at)) in &p.gone {
            if now.saturating_sub(*at) < grace {
                out.entry(*netns).or_insert_with(|| name.clone());
            }
        }
        out
    }
}

/// The collection loop's side: frames into the retained window, pods into their times.
pub struct Sink(pub Arc<Shared>);

impl Frames for Sink {
    fn frame(&mut self, frame: &Frame) {
        if let Frame::Pods(now) = frame {
            let t = Clock::monotonic_now();
            let mut p = self.0.pods.lock().expect("not poisoned");
            let gone: Vec<(u32, PodMeta)> = p
                .now
                .iter()
                .filter(|(n, _)| !now.contains_key(n))
                .map(|(n, name)| (*n, name.clone()))
                .collect();
            for (netns, name) in gone {
                p.gone.insert(netns, (name, t));
            }
            p.gone.retain(|n, (_, at)| {
                !now.contains_key(n)
                    && t.saturating_sub(*at) < 2 * self.0.pod_grace.as_nanos() as u64
            });
            p.now = now.clone();
            // A pod's burst count goes with its series.
            let known = |n: &u32| p.now.contains_key(n) || p.gone.contains_key(n);
            self.0.bursts.lock().expect("not poisoned").retain(|n, _| known(n));
        }
        if let Frame::Event(crate::event::Event::Burst(b)) = frame {
            *self.0.bursts.lock().expect("not poisoned").entry(b.netns).or_default() += 1;
        }
        self.0.retained.lock().expect("not poisoned").frame(frame);
    }
}
