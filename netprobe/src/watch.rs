//! `netprobe watch`: drops as they happen.

use std::io::{self, BufWriter, StdoutLock, Write};

use crate::{
    agent::Agent,
    cli::{Format, WatchArgs},
    drops::DropSample,
    run::{self, Sink},
};

/// One JSON Lines record; `type` tells them apart (docs/json.md).
#[derive(serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Record<'a> {
    Drop(&'a DropSample),
    /// Emitted whenever the total of lost samples grows.
    LostSamples {
        total: u64,
    },
}

struct Lines {
    out: BufWriter<StdoutLock<'static>>,
    format: Format,
    lost_seen: u64,
    /// The first write error (e.g. a closed pipe) ends the watch after the current drain.
    error: Option<io::Error>,
}

impl Lines {
    fn write(&mut self, text: Option<String>, record: Record<'_>) {
        let r = match (self.format, text) {
            (Format::Text, Some(t)) => writeln!(self.out, "{t}"),
            _ => serde_json::to_writer(&mut self.out, &record)
                .map_err(io::Error::other)
                .and_then(|()| writeln!(self.out)),
        };
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }
}

impl Sink for Lines {
    fn sample(&mut self, sample: DropSample) {
        let text = (self.format == Format::Text).then(|| text_line(&sample));
        self.write(text, Record::Drop(&sample));
    }

    fn tick(&mut self, agent: &Agent) {
        let lost = agent.drops.health().map_or(self.lost_seen, |h| h.lost_samples);
        if lost > self.lost_seen {
            self.lost_seen = lost;
            let text = format!(
                "# {lost} samples lost so far (ring buffer full); counts stay exact, see `netprobe report`"
            );
            self.write(Some(text), Record::LostSamples { total: lost });
        }
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
    }

    fn stopped(&self) -> bool {
        self.error.is_some()
    }
}

pub async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let mut shutdown = run::Shutdown::install()?;
    let mut agent = Agent::start(args.pod.as_deref())?;
    let scope =
        agent.pod_filter.as_ref().map_or("all pods".to_owned(), |(n, _)| format!("pod {n}"));
    eprintln!(
        "netprobe: watching drops in {scope} (skb:kfree_skb via {}); Ctrl-C to stop",
        agent.drops.tier
    );
    for s in &agent.drops.skipped {
        eprintln!("netprobe: {} skipped: {}", s.tier, s.why);
    }
    let mut lines = Lines {
        out: BufWriter::new(io::stdout().lock()),
        format: args.format,
        lost_seen: 0,
        error: None,
    };
    run::collect(&mut agent, args.duration, &mut lines, &mut shutdown).await?;
    match lines.error {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn text_line(s: &DropSample) -> String {
    let time = s.time.get(11..26).unwrap_or(&s.time);
    let flow = match (s.saddr, s.daddr) {
        (Some(src), Some(dst)) => {
            let port = |p: Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
            let proto = s.proto.as_deref().unwrap_or("?");
            format!("{proto} {src}{} -> {dst}{}", port(s.sport), port(s.dport))
        }
        _ => "non-IP".to_owned(),
    };
    format!("{time} cpu{:<2} {:<14} {:<20} {flow:<46} at {}", s.cpu, s.pod, s.reason, s.location)
}
