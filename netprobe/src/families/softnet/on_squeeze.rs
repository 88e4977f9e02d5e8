//! The per-run hooks only while CPUs squeeze. An always-on agent must not run programs on
//! every NET_RX run of every packet: the kernel already counts squeezes per CPU, exactly and for
//! free, in /proc/net/softnet_stat (time_squeeze), and backlog drops reach kfree_skb (drops).
//! So the squeezes come from there, and the run hooks (net_rx_action or softirq entry and
//! exit, napi_poll), which add how long and how big the squeezed runs are, attach when a
//! CPU's time_squeeze grows and detach after QUIET without growth.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use aya::{
    maps::{MapData, PerCpuArray, PerCpuValues},
    Ebpf,
};
use netprobe_common::softnet::Run;

use crate::{
    error::Error,
    hooks::{self, Links, Relink},
    kstat::SoftnetStat,
    tiers::Tier,
};

/// Without a squeeze for this long, the run hooks detach.
pub const QUIET: Duration = Duration::from_secs(10);

/// Whether the per-run hooks stay attached or follow the squeezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunHooks {
    /// Attached all the time: every run counted (`--events softnet`, `bursts`).
    Always,
    /// Attached while time_squeeze grows (the default families, the agent).
    OnSqueeze,
}

impl RunHooks {
    /// What `doctor` and the start-up line say.
    pub fn describe(self) -> String {
        match self {
            RunHooks::Always => "per-run hooks always attached".into(),
            RunHooks::OnSqueeze => format!(
                "squeezes from /proc/net/softnet_stat; per-run hooks attach when time_squeeze \
                 grows, detach after {} s without",
                QUIET.as_secs()
            ),
        }
    }
}

pub struct OnSqueeze {
    relink: Relink,
    tier: Tier,
    links: Option<Links>,
    runs: PerCpuArray<MapData, Run>,
    /// time_squeeze per CPU when the agent started, and at the last look.
    base: BTreeMap<u32, u64>,
    last: BTreeMap<u32, u64>,
    last_growth: Instant,
}

impl OnSqueeze {
    /// Takes over a family attached once at `tier` (so its programs are loaded and its tier
    /// known) and detaches it until the first squeeze.
    pub fn start(
        bpf: &mut Ebpf,
        links: Links,
        relink: Relink,
        tier: Tier,
        runs: PerCpuArray<MapData, Run>,
    ) -> Self {
        links.detach(bpf);
        let now = squeezes();
        Self {
            relink,
            tier,
            links: None,
            runs,
            base: now.clone(),
            last: now,
            last_growth: Instant::now(),
        }
    }

    /// Per CPU, the squeezes since the agent started.
    pub fn squeezes(&self) -> BTreeMap<u32, u64> {
        let now = squeezes();
        now.iter()
            .map(|(cpu, n)| (*cpu, n.wrapping_sub(*self.base.get(cpu).unwrap_or(n))))
            .collect()
    }

    /// Attaches on growth, detaches after QUIET: what changed, as a note.
    pub fn step(&mut self, bpf: &mut Ebpf) -> Result<Option<String>, Error> {
        let now = squeezes();
        let grown: Vec<u32> =
            now.iter().filter(|(cpu, n)| self.last.get(cpu) != Some(n)).map(|(c, _)| *c).collect();
        self.last = now;
        if !grown.is_empty() {
            self.last_growth = Instant::now();
        }
        match &self.links {
            None if !grown.is_empty() => {
                self.reset_runs()?;
                self.links = Some(hooks::relink(bpf, &self.relink)?);
                let cpus: Vec<String> = grown.iter().map(u32::to_string).collect();
                Ok(Some(format!(
                    "softnet: CPU {} squeezed: per-run hooks attached ({})",
                    cpus.join(", "),
                    self.tier
                )))
            }
            Some(_) if self.last_growth.elapsed() >= QUIET => {
                self.links.take().expect("matched").detach(bpf);
                Ok(Some(format!(
                    "softnet: no squeeze for {} s: per-run hooks detached",
                    QUIET.as_secs()
                )))
            }
            _ => Ok(None),
        }
    }

    /// Before attaching, while no run program can fire: forget runs left open at the last
    /// detach, and start each CPU's squeeze reading from now, so that the first squeezed run
    /// seen does not carry every squeeze of the time detached.
    fn reset_runs(&mut self) -> Result<(), Error> {
        let ncpu = aya::util::nr_cpus().map_err(|(_, e)| e)?;
        let runs: Vec<Run> = (0..ncpu as u32)
            .map(|cpu| Run {
                last_squeeze: self.last.get(&cpu).copied().unwrap_or(0) as u32,
                ..Run::default()
            })
            .collect();
        self.runs.set(0, PerCpuValues::try_from(runs)?, 0)?;
        Ok(())
    }
}

fn squeezes() -> BTreeMap<u32, u64> {
    SoftnetStat::read().iter().map(|c| (c.cpu, c.time_squeeze)).collect()
}
