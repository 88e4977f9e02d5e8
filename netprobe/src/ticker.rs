//! A periodic timer on a timerfd, waking its task once per period. tokio's timers wake a
//! sleeper early for every deadline more than 64 ms away (to move it down its timer wheel),
//! and on a node's busiest CPU each wakeup of netprobe costs more than its CPU time shows
//! (docs/benchmarks.md).

use std::{io, os::fd::OwnedFd, time::Duration};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
};
use tokio::io::{unix::AsyncFd, Interest};

pub struct Ticker(AsyncFd<OwnedFd>);

impl Ticker {
    /// The first tick one `period` from now. Ticks missed while the task was busy come as
    /// one, and the next keeps the phase.
    pub fn every(period: Duration) -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let period = period.try_into().map_err(|_| io::Error::other("timer period too long"))?;
        let spec = Itimerspec { it_interval: period, it_value: period };
        timerfd_settime(&fd, TimerfdTimerFlags::empty(), &spec)?;
        // SAFETY: the AsyncFd owns the fd, which stays open until it drops.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self(fd))
    }

    pub async fn tick(&self) -> io::Result<()> {
        loop {
            let mut ready = self.0.readable().await?;
            // The count of expirations since the last read, which resets it.
            let mut expirations = [0u8; 8];
            match rustix::io::read(ready.get_inner(), &mut expirations) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn missed_ticks_come_as_one_and_the_phase_is_kept() {
        let period = Duration::from_millis(200);
        let t = Ticker::every(period).unwrap();
        let start = Instant::now();
        t.tick().await.unwrap();
        assert!(start.elapsed() >= period, "{:?}", start.elapsed());
        // Five and a half periods busy: one tick at once, then the next at the old phase,
        // half a period on, rather than four more at once.
        std::thread::sleep(period * 11 / 2);
        let missed = Instant::now();
        t.tick().await.unwrap();
        assert!(missed.elapsed() < period / 2, "{:?}", missed.elapsed());
        t.tick().await.unwrap();
        assert!(missed.elapsed() >= period * 3 / 10, "{:?}", missed.elapsed());
    }
}
