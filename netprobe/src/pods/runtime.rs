//! Pod names from the container runtime (CRI), refreshed once a second on a thread of its
//! own: a runtime that is slow or gone must never stall the drain loop, which reads only the
//! last answer. Pods that went away keep their names for a minute, for late events.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use super::{Pod, PodMeta, Resolver, Source};
use crate::cri::{self, CriPod, RuntimeInfo};

const EVERY: Duration = Duration::from_secs(1);
/// How long a deleted pod keeps its name.
const KEEP_GONE: Duration = Duration::from_secs(60);

/// What the runtime last said.
#[derive(Default)]
pub struct Status {
    pub runtime: Option<RuntimeInfo>,
    /// Ready sandboxes, hostNetwork ones included.
    pub pods: Vec<CriPod>,
    /// Why the last refresh failed; None while the runtime answers.
    pub error: Option<String>,
    /// Answers so far; 0 until the first.
    pub refreshes: u64,
}

struct State {
    status: Status,
    /// Pods no longer listed, with when they went.
    gone: BTreeMap<u64, (CriPod, Instant)>,
}

/// A resolver whose answers come from the runtime thread.
pub struct Runtime {
    pub socket: PathBuf,
    state: Arc<Mutex<State>>,
}

impl Runtime {
    /// Starts asking the runtime at `socket`; waits up to a second for its first answer, so
    /// that pods are named from the start.
    pub fn start(socket: PathBuf) -> Self {
        let state =
            Arc::new(Mutex::new(State { status: Status::default(), gone: BTreeMap::new() }));
        let weak = Arc::downgrade(&state);
        let path = socket.clone();
        let spawned = thread::Builder::new().name("netprobe-cri".into()).spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            let mut client = None;
            // Ends when the resolver is dropped.
            while let Some(state) = weak.upgrade() {
                let answer = rt.block_on(ask(&path, &mut client));
                update(&state, answer);
                drop(state);
                thread::sleep(EVERY);
            }
        });
        let runtime = Self { socket, state };
        if spawned.is_err() {
            runtime.lock().status.error = Some("could not start its thread".into());
            return runtime;
        }
        let deadline = Instant::now() + cri::TIMEOUT + Duration::from_millis(500);
        while runtime.lock().status.refreshes == 0 && runtime.lock().status.error.is_none() {
            if Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        runtime
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// The last answer: what `doctor` and the start-up note show.
    pub fn status<T>(&self, f: impl FnOnce(&Status) -> T) -> T {
        f(&self.lock().status)
    }
}

async fn ask(
    socket: &std::path::Path,
    client: &mut Option<cri::Client>,
) -> Result<(RuntimeInfo, Vec<CriPod>), String> {
    if client.is_none() {
        *client = Some(cri::Client::connect(socket).await.map_err(|e| e.to_string())?);
    }
    let c = client.as_mut().expect("connected above");
    let result = async { Ok::<_, cri::CriError>((c.version().await?, c.pods().await?)) }.await;
    result.map_err(|e| {
        // Connect afresh next time: the runtime may have restarted elsewhere.
        *client = None;
        e.to_string()
    })
}

fn update(state: &Mutex<State>, answer: Result<(RuntimeInfo, Vec<CriPod>), String>) {
    let mut s = state.lock().expect("not poisoned");
    match answer {
        Ok((runtime, pods)) => {
            let now = Instant::now();
            let listed: Vec<u64> = pods.iter().filter_map(|p| p.netns_inode).collect();
            for old in std::mem::take(&mut s.status.pods) {
                if let Some(inode) = old.netns_inode.filter(|i| !listed.contains(i)) {
                    s.gone.insert(inode, (old, now));
                }
            }
            s.gone.retain(|inode, (_, at)| !listed.contains(inode) && at.elapsed() < KEEP_GONE);
            s.status = Status {
                runtime: Some(runtime),
                pods,
                error: None,
                refreshes: s.status.refreshes + 1,
            };
        }
        // The names it gave stay: a runtime that went away says nothing about the pods.
        Err(e) => s.status.error = Some(e),
    }
}

fn pod(p: &CriPod) -> Option<Pod> {
    let netns = u32::try_from(p.netns_inode?).ok()?;
    Some(Pod {
        netns,
        meta: PodMeta {
            name: p.name.clone(),
            namespace: Some(p.namespace.clone()),
            uid: Some(p.uid.clone()),
            labels: p.labels.clone(),
            sandbox: Some(p.sandbox_id.clone()),
            source: Source::Cri,
        },
        path: p.netns_path.clone()?,
    })
}

impl Resolver for Runtime {
    fn pods(&self) -> Vec<Pod> {
        let s = self.lock();
        s.status.pods.iter().chain(s.gone.values().map(|(p, _)| p)).filter_map(pod).collect()
    }
}
