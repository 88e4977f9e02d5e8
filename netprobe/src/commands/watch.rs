//! `netprobe watch`: events as they happen.

use std::{
    io::{self, StdoutLock, Write},
    path::PathBuf,
};

use crate::{
    agent::{Agent, AgentConfig},
    cli::{self, Format, WatchArgs},
    event::Event,
    json::field,
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
    out: Output,
    format: Format,
    lost_seen: u64,
    /// Namespace and uid of the Kubernetes pods, by netns, as of the last drain.
    pods: std::collections::HashMap<u32, (Option<String>, Option<String>)>,
}

/// Stdout, and the lines not written to it yet. Records are made in place: appends to a Vec
/// are inlined, where serde_json's small writes into a BufWriter were each a call.
struct Output {
    stdout: StdoutLock<'static>,
    pending: Vec<u8>,
    /// The first error (e.g. a closed pipe) ends the watch after the current drain.
    error: Option<io::Error>,
}

impl Output {
    /// Appends the line `make` writes; one that fails is left out, and its error kept.
    fn line(&mut self, make: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) {
        let start = self.pending.len();
        match make(&mut self.pending) {
            Ok(()) => self.pending.push(b'\n'),
            Err(e) => {
                self.pending.truncate(start);
                self.error.get_or_insert(e);
            }
        }
        if self.pending.len() >= OUT_BUFFER {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.stdout.write_all(&self.pending).and_then(|()| self.stdout.flush()) {
            self.error.get_or_insert(e);
        }
        self.pending.clear();
    }
}

/// A watch record (docs/json.md): the event's object, then for a Kubernetes pod its
/// namespace and uid, as if the three were one struct with the event flattened into it.
fn record(
    out: &mut Vec<u8>,
    event: &Event,
    pod: Option<&(Option<String>, Option<String>)>,
) -> io::Result<()> {
    match event {
        Event::Drop(d) => d.write_json(out),
        e => serde_json::to_writer(&mut *out, e).map_err(io::Error::other)?,
    }
    if let Some((namespace, uid)) = pod {
        // The event's closing brace, written again after them.
        out.pop();
        if let Some(n) = namespace {
            field(out, "namespace", n);
        }
        if let Some(u) = uid {
            field(out, "uid", u);
        }
        out.push(b'}');
    }
    Ok(())
}

impl Sink for Lines {
    fn live(&self) -> bool {
        true
    }

    fn event(&mut self, event: Event) {
        match self.format {
            Format::Text => self.out.line(|out| write!(out, "{}", event.text())),
            Format::Json => {
                self.out.line(|out| record(out, &event, self.pods.get(&event.netns())));
            }
        }
    }

    fn tick(&mut self, agent: &mut Agent) {
        self.pods = kubernetes_pods(agent);
        let lost = agent.health().map_or(self.lost_seen, |h| h.lost_samples);
        if lost > self.lost_seen {
            self.lost_seen = lost;
            self.out.line(|out| match self.format {
                Format::Text => write!(out, "# {lost} samples lost so far (ring buffer full); counts stay exact, see `netprobe report`"),
                Format::Json => {
                    let json = LostSamples { r#type: "lost_samples", total: lost };
                    serde_json::to_writer(out, &json).map_err(io::Error::other)
                }
            });
        }
        self.out.flush();
    }

    fn stopped(&self) -> bool {
        self.out.error.is_some()
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
        drop_samples: true,
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
        out: Output {
            stdout: io::stdout().lock(),
            pending: Vec::with_capacity(OUT_BUFFER),
            error: None,
        },
        format: args.format,
        lost_seen: 0,
        pods: kubernetes_pods(&agent),
    };
    run::collect(&mut agent, args.duration, &mut lines, &mut shutdown).await?;
    match lines.out.error {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::{conntrack::TableFullMessage, drops::json::tests::udp};

    /// What watch wrote before `record`: serde with the event flattened.
    #[derive(serde::Serialize)]
    struct Flattened<'a> {
        #[serde(flatten)]
        event: &'a Event,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        uid: Option<&'a str>,
    }

    #[test]
    fn records_are_the_flattened_struct() {
        let full = TableFullMessage {
            time: "2026-12-01T22:55:36.123456Z".into(),
            ts_ns: 1,
            cpu: 0,
            pod: "shop/web".into(),
            netns: 4026532999,
            message: "nf_conntrack: table full, dropping packet".into(),
        };
        let pods = [None, Some((Some("shop"), Some("5d1c"))), Some((Some("shop"), None))];
        for event in [Event::Drop(udp()), Event::ConntrackTableFull(full)] {
            for pod in pods {
                let (namespace, uid) = pod.unwrap_or_default();
                let expected = serde_json::to_string(&Flattened { event: &event, namespace, uid });
                let pod = pod.map(|(n, u)| (n.map(String::from), u.map(String::from)));
                let mut line = Vec::new();
                record(&mut line, &event, pod.as_ref()).unwrap();
                assert_eq!(String::from_utf8(line).unwrap(), expected.unwrap());
            }
        }
    }
}
