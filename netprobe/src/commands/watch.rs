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

/// Output buffered between drains: a drain of a flood is written in a few large writes.
const OUT_BUFFER: usize = 1 << 20;

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
        write(&mut self.out, self.format, &mut self.error, text, json);
    }
}

/// One line, as text or JSON; the first error is kept.
fn write(
    out: &mut BufWriter<StdoutLock<'static>>,
    format: Format,
    error: &mut Option<io::Error>,
    text: impl FnOnce() -> String,
    json: impl serde::Serialize,
) {
    let r = match format {
        Format::Text => writeln!(out, "{}", text()),
        Format::Json => serde_json::to_writer(&mut *out, &json)
            .map_err(io::Error::other)
            .and_then(|()| writeln!(out)),
    };
    if let Err(e) = r {
        error.get_or_insert(e);
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
        let (namespace, uid) = self
            .pods
            .get(&event.netns())
            .map_or((None, None), |(n, u)| (n.as_deref(), u.as_deref()));
        let record = Record { event: &event, namespace, uid };
        write(&mut self.out, self.format, &mut self.error, || event.text(), &record);
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
        // Written out when full or at each drain's end (tick), not per event.
        out: BufWriter::with_capacity(OUT_BUFFER, io::stdout().lock()),
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
