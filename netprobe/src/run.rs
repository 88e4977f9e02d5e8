//! The collection loop shared by watch and report: drain on a timer until the duration ends,
//! Ctrl-C or SIGTERM. Returning lets the caller drop the agent, which detaches everything.

use std::time::Duration;

use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::{interval, sleep, MissedTickBehavior},
};

use crate::{agent::Agent, event::Event};

/// The kernel side never wakes us (BPF_RB_NO_WAKEUP); this is how often we look.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Where collected data goes.
pub trait Sink {
    fn event(&mut self, event: Event);
    /// After each drain, with the agent's counters readable.
    fn tick(&mut self, _agent: &mut Agent) {}
    /// True when the sink cannot take more (e.g. its reader went away).
    fn stopped(&self) -> bool {
        false
    }
}

/// SIGINT and SIGTERM handlers, installed before anything is attached so that a signal
/// arriving during setup still ends in a clean detach rather than the default kill.
pub struct Shutdown {
    term: Signal,
    int: Signal,
}

impl Shutdown {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    /// Runs the (blocking) agent start-up, unless a signal comes first: then None, and the
    /// caller exits. Whatever start-up attached is released when the process ends.
    pub async fn start<T: Send + 'static>(
        &mut self,
        start: impl FnOnce() -> Result<T, crate::error::Error> + Send + 'static,
    ) -> anyhow::Result<Option<T>> {
        tokio::select! {
            r = tokio::task::spawn_blocking(start) => Ok(Some(r??)),
            () = self.recv() => Ok(None),
        }
    }
}

pub async fn collect(
    agent: &mut Agent,
    duration: Option<Duration>,
    sink: &mut impl Sink,
    shutdown: &mut Shutdown,
) -> std::io::Result<()> {
    let mut tick = interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = sleep(duration.unwrap_or(Duration::from_secs(100 * 365 * 86400)));
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut end => break,
            () = shutdown.recv() => break,
        }
        agent.drain(|e| sink.event(e), false);
        for note in agent.take_notes() {
            eprintln!("netprobe: {note}");
        }
        sink.tick(agent);
        if sink.stopped() {
            return Ok(());
        }
    }
    agent.drain(|e| sink.event(e), true);
    sink.tick(agent);
    Ok(())
}
