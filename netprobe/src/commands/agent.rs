//! `netprobe agent`: attach the default families once and keep them attached until SIGTERM,
//! retaining a window of frames and serving metrics, findings, reports and recordings.

use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::{
    agent::{Agent, AgentConfig},
    cli::{self, AgentArgs},
    daemon::{self, http, Shared},
    event::Event,
    families::bursts::metrics::{BinRates, RATE_BOUNDS},
    pods::selection::Selection,
    record::collect::Recorder,
    run,
};

pub async fn agent(args: AgentArgs, cri_socket: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let token = args.api_token_file.as_deref().map(read_token).transpose()?;
    let max_bytes = usize::try_from(args.max_memory).unwrap_or(usize::MAX);
    let shared = Arc::new(Shared::new(args.retain, max_bytes, token, args.pod_grace));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let app = http::router(shared.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut shutdown = run::Shutdown::install()?;
    let config = AgentConfig {
        forget_after: args.pod_grace,
        selection: Selection::default(),
        cri_socket,
        families: cli::families(&args.events),
        tier: args.tier,
        bursts: cli::bursts_config(true),
        softnet_runs: cli::softnet_runs(&args.events),
        drop_samples: false,
        linklocal: args.linklocal.settings(),
    };
    let Some(mut agent) = shutdown.start(move || Agent::start(config)).await? else {
        return Ok(());
    };
    for (family, a) in agent.attached() {
        for s in &a.skipped {
            eprintln!("netprobe: {}: {} skipped: {}", family.name(), s.tier, s.why);
        }
    }
    let recorder = Recorder::start(&agent, daemon::Sink(shared.clone()))?;
    shared.set_ready();
    eprintln!(
        "netprobe: serving http://{addr}/metrics ({}; keeping {:?}); SIGTERM to stop",
        agent.describe(),
        args.retain
    );
    let mut sink = Collection { recorder, shared: shared.clone(), rates_at: Instant::now() };
    run::collect(&mut agent, None, &mut sink, &mut shutdown).await?;
    server.abort();
    if let Some(e) = sink.recorder.error {
        eprintln!("netprobe: some counter reads failed while running: {e}");
    }
    Ok(())
}

/// The recorder, and once a second the bursts family's per-bin rates for /metrics.
struct Collection {
    recorder: Recorder<daemon::Sink>,
    shared: Arc<Shared>,
    rates_at: Instant,
}

impl run::Sink for Collection {
    fn event(&mut self, event: Event) {
        self.recorder.event(event);
    }

    fn tick(&mut self, agent: &mut Agent) {
        self.recorder.tick(agent);
        if self.rates_at.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.rates_at = Instant::now();
        let Some(h) = agent.bursts().and_then(|l| l.histograms.as_ref()) else { return };
        let pods = &agent.names().pods;
        let rates = h
            .pods
            .iter()
            .filter_map(|((pod, direction), r)| {
                let (buckets, sum, count) = r.buckets(&RATE_BOUNDS);
                let netns = pods.lookup(pod)?;
                Some(BinRates { netns, direction: direction.name(), buckets, sum, count })
            })
            .collect();
        self.shared.set_bin_rates(rates);
    }

    fn stopped(&self) -> bool {
        self.recorder.stopped()
    }
}

/// The bearer token: the file's first line, which must not be empty.
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the API token {}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    anyhow::ensure!(!token.is_empty(), "the API token file {} is empty", path.display());
    Ok(token)
}
