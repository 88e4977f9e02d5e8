//! `netprobe watch`: events as they happen.

use std::{
    io::{self, BufWriter, StdoutLock, Write},
    path::PathBuf,
};

use crate::{
    agent::{Agent, AgentConfig},
    cli::{self, Format, WatchArgs},
    event::Event,
    run::{self, Sink},
};

/// Emitted whenever the total of lost samples grows (docs/json.md).
#[derive(serde::Serialize)]
struct LostSamples {
    r#type: &'static str,
    total: u64,
}

struct Lines {
    out: BufWriter<StdoutLock<'static>>,
    format: Format,
    lost_seen: u64,
    /// Namespace and uid of the Kubernetes pods, by netns, as of the last drain.
    pods: std::collections::HashMap<u32, (Option<String>, Option<String>)>,
    /// The first write error (e.g. a closed pipe) ends the watch after the current drain.
    error: Option<io::Error>,
}

impl Lines {
    fn write(&mut self, text: impl FnOnce() -> String, json: impl serde::Serialize) {
        let r = match self.format {
            Format::Text => writeln!(self.out, "{}", text()),
            Format::Json => serde_json::to_writer(&mut self.out, &json)
                .map_err(io::Error::other)
                .and_then(|()| writeln!(self.out)),
        };
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }
}

/// A watch record: the event, and for a Kubernetes pod its namespace and uid.
#[derive(serde::Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    event: &'a Event,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
}

impl Sink for Lines {
    fn event(&mut self, event: Event) {
        let (namespace, uid) = self.pods.get(&event.netns()).cloned().unwrap_or_default();
        let record = Record { event: &event, namespace: namespace.as_deref(), uid: uid.as_deref() };
        self.write(|| event.text(), &record);
    }

    fn tick(&mut self, agent: &mut Agent) {
        self.pods = kubernetes_pods(agent);
        let lost = agent.health().map_or(self.lost_seen, |h| h.lost_samples);
        if lost > self.lost_seen {
            self.lost_seen = lost;
            self.write(
                || format!("# {lost} samples lost so far (ring buffer full); counts stay exact, see `netprobe report`"),
                LostSamples { r#type: "lost_samples", total: lost },
            );
        }
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
    }

    fn stopped(&self) -> bool {
        self.error.is_some()
    }
}

pub async fn watch(args: WatchArgs, cri_socket: Option<PathBuf>) -> anyhow::Result<()> {
    let mut shutdown = run::Shutdown::install()?;
    let config = AgentConfig {
        forget_after: crate::agent::FORGET_AFTER,
        selection: args.select.selection(),
        cri_socket,
        families: cli::families(&args.events),
        tier: args.tier,
        bursts: cli::bursts_config(false),
        softnet_runs: cli::softnet_runs(&args.events),
        decode_drops: true,
        linklocal: Default::default(),
    };
    let Some(mut agent) = shutdown.start(move || Agent::start(config)).await? else {
        return Ok(());
    };
    let scope = match agent.single_pod() {
        Some((name, _)) if args.select.namespace.is_none() && args.select.selector.is_none() => {
            format!("pod {name}")
        }
        _ => agent.selection().describe(),
    };
    eprintln!("netprobe: watching {scope} ({}); Ctrl-C to stop", agent.describe());
    for (family, a) in agent.attached() {
        for s in &a.skipped {
            eprintln!("netprobe: {}: {} skipped: {}", family.name(), s.tier, s.why);
        }
    }
    let mut lines = Lines {
        out: BufWriter::new(io::stdout().lock()),
        format: args.format,
        lost_seen: 0,
        pods: kubernetes_pods(&agent),
        error: None,
    };
    run::collect(&mut agent, args.duration, &mut lines, &mut shutdown).await?;
    match lines.error {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Namespace and uid of each Kubernetes pod, by netns.
fn kubernetes_pods(
    agent: &Agent,
) -> std::collections::HashMap<u32, (Option<String>, Option<String>)> {
    let pods = agent.names().pods.pods();
    let k8s = pods.filter(|p| p.meta.namespace.is_some());
    k8s.map(|p| (p.netns, (p.meta.namespace.clone(), p.meta.uid.clone()))).collect()
}
