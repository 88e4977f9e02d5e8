//! The collection loop shared by watch and report: drain on a timer until the duration ends,
//! Ctrl-C or SIGTERM. Returning lets the caller drop the agent, which detaches everything.

use std::{
    os::fd::{AsRawFd, RawFd},
    time::Duration,
};

use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, Signal, SignalKind},
    time::sleep,
};

use crate::{agent::Agent, event::Event, ticker::Ticker};

/// How often a stream (watch) and burst binning drain: often enough to look live, and to
/// read each CPU's 256 ms of burst bins before they are overwritten.
const DRAIN_LIVE: Duration = Duration::from_millis(100);
/// How often everything else drains: once a second, the poll's own period. On a node's
/// busiest CPU each wakeup of netprobe costs more than its own CPU time shows
/// (docs/benchmarks.md). The kernel wakes the reader sooner once the ring is a quarter full.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Where collected data goes.
pub trait Sink {
    fn event(&mut self, event: Event);
    /// After each drain, with the agent's counters readable.
    fn tick(&mut self, _agent: &mut Agent) {}
    /// True when the sink cannot take more (e.g. its reader went away).
    fn stopped(&self) -> bool {
        false
    }
    /// True when the sink shows events as they come.
    fn live(&self) -> bool {
        false
    }
}

/// The ring buffer's fd, for readiness: the agent owns the map and outlives the loop.
struct Ring(RawFd);

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.0
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
    let live = sink.live() || agent.bursts().is_some();
    let tick = Ticker::every(if live { DRAIN_LIVE } else { DRAIN_QUIET })?;
    // SAFETY: the fd is the agent's ring buffer map, open until the agent drops, after this
    // registration (dropped on return) is gone.
    let ring =
        unsafe { AsyncFd::register_with_interest(Ring(agent.samples_fd()), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
    let end = sleep(duration.unwrap_or(Duration::from_secs(100 * 365 * 86400)));
    tokio::pin!(end);
    loop {
        tokio::select! {
            t = tick.tick() => t?,
            ready = ring.readable() => ready?.clear_ready(),
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
