//! Softnet in the report: exact NET_RX runs and squeezes per CPU beside the kernel's
//! softnet_stat, the sysctls in force, and the drops freed on a full backlog.

use super::{CpuSoftnet, Knobs};
use crate::{
    event::Event,
    families::drops::report::{rows, DropCount},
    family::Family,
    frames::{Frame, Snapshot},
    reasons::Reasons,
    report::{
        html,
        section::{self, Context, Section},
        text::table,
        timeline::{Add, Metric, SeriesView, Subject, Timeline},
        Report,
    },
};
use std::collections::BTreeMap;

#[derive(Debug, serde::Serialize)]
pub struct SoftnetReport {
    /// The sysctls in force when CPUs last squeezed or dropped, else at the end.
    pub knobs: Knobs,
    /// Exact, per CPU, over the report.
    pub cpus: Vec<CpuSoftnet>,
    /// The kernel's softnet_stat per CPU, over the report.
    pub kernel_cpus: Vec<KernelCpu>,
    /// Exact: drops freed where a CPU's backlog was full (the CPU RPS steered to), by pod.
    pub backlog_drops: Vec<DropCount>,
    /// From samples: the biggest squeezed run, in packets and in time.
    pub max_squeezed_packets: u64,
    pub max_squeezed_us: f64,
}

/// A CPU's softnet_stat growth over the report.
#[derive(Debug, serde::Serialize)]
pub struct KernelCpu {
    pub cpu: u32,
    pub time_squeeze: u64,
    /// Packets dropped because this CPU's backlog was full.
    pub dropped: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Softnet {
    /// Present when the softnet family ran.
    pub softnet: Option<SoftnetReport>,
}

#[derive(Default)]
pub struct Part {
    /// The softnet sysctls when CPUs last squeezed or dropped, which may not be the last ones.
    trouble_knobs: Option<Knobs>,
    /// The biggest squeezed run sampled: packets, and microseconds.
    max_squeezed: (u64, f64),
    samples: u64,
}

impl section::Part for Part {
    type Section = Softnet;

    fn totals(s: &Snapshot, _: &Reasons, add: &mut Add) {
        super::timeline::totals(s, add);
    }

    fn frame(&mut self, frame: &Frame, tl: &Timeline) {
        match frame {
            Frame::Snapshot(s) => {
                let now = |m| tl.sum(m, |_, _| true).last().copied().unwrap_or(0);
                if now(Metric::KERNEL_TIME_SQUEEZE) + now(Metric::KERNEL_BACKLOG_DROPPED) > 0 {
                    self.trouble_knobs = Some(s.kernel.knobs.clone());
                }
            }
            Frame::Event(Event::Squeeze(q)) => {
                self.samples += 1;
                self.max_squeezed.0 = self.max_squeezed.0.max(q.packets);
                self.max_squeezed.1 = self.max_squeezed.1.max(q.duration_us);
            }
            _ => {}
        }
    }

    fn samples(&self) -> u64 {
        self.samples
    }

    fn section(&self, c: &Context) -> Softnet {
        let softnet = c.ran(Family::Softnet).then(|| {
            let cpu_total = |m, cpu| c.timeline.total(&(m, Subject::Cpu(cpu), String::new()));
            let cpus = c
                .last
                .rows
                .softnet
                .iter()
                .map(|s| CpuSoftnet {
                    cpu: s.cpu,
                    runs: cpu_total(Metric::SOFTNET_RUNS, s.cpu),
                    packets: cpu_total(Metric::SOFTNET_PACKETS, s.cpu),
                    busy_ns: cpu_total(Metric::SOFTNET_BUSY_NS, s.cpu),
                    squeezes: cpu_total(Metric::SQUEEZES, s.cpu),
                    covered_runs: cpu_total(Metric::SQUEEZE_COVERED_RUNS, s.cpu),
                })
                .collect();
            let kernel_cpus = c
                .last
                .kernel
                .softnet_stat
                .iter()
                .map(|s| KernelCpu {
                    cpu: s.cpu,
                    time_squeeze: cpu_total(Metric::KERNEL_TIME_SQUEEZE, s.cpu),
                    dropped: cpu_total(Metric::KERNEL_BACKLOG_DROPPED, s.cpu),
                })
                .collect();
            SoftnetReport {
                knobs: self.trouble_knobs.clone().unwrap_or_else(|| c.last.kernel.knobs.clone()),
                cpus,
                kernel_cpus,
                backlog_drops: rows(c, Metric::BACKLOG_DROPS),
                max_squeezed_packets: self.max_squeezed.0,
                max_squeezed_us: self.max_squeezed.1,
            }
        });
        Softnet { softnet }
    }
}

impl Section for Softnet {
    const TEXT: u8 = 40;
    const HTML: u8 = 20;

    fn text(&self, _: &Report) -> String {
        let Some(sn) = &self.softnet else { return String::new() };
        let knob = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
        let mut s = format!(
            "\nSoftnet per CPU (exact; netdev_budget {}, netdev_budget_usecs {}, netdev_max_backlog {})\n",
            knob(sn.knobs.netdev_budget),
            knob(sn.knobs.netdev_budget_usecs),
            knob(sn.knobs.netdev_max_backlog)
        );
        let rows = sn.cpus.iter().map(|c| {
            let coverage = if c.runs == 0 {
                "-".into()
            } else {
                format!("{:.0}%", 100.0 * c.covered_runs as f64 / c.runs as f64)
            };
            [
                c.cpu.to_string(),
                c.runs.to_string(),
                c.packets.to_string(),
                format!("{:.1}", c.busy_ns as f64 / 1e6),
                c.squeezes.to_string(),
                coverage,
            ]
        });
        s += &table(
            ["CPU", "NET_RX RUNS", "PACKETS", "BUSY MS", "SQUEEZED", "SQUEEZE COVERAGE"],
            rows,
        );
        if sn.max_squeezed_packets > 0 {
            s += &format!(
                "  largest squeezed run: {} packets; longest: {:.0} us\n",
                sn.max_squeezed_packets, sn.max_squeezed_us
            );
        }
        s += "Backlog overflow drops by pod (exact; freed where the CPU's backlog was full)\n";
        let rows = sn.backlog_drops.iter().map(|d| [d.pod.clone(), d.count.to_string()]);
        s += &table(["POD", "DROPS"], rows);
        s
    }

    fn html(&self, r: &Report) -> String {
        let mut s = "<h2>Softnet time squeezes per CPU</h2>\n".to_owned();
        let squeezes: Vec<&SeriesView> = html::series(r, Metric::SQUEEZES);
        let one = BTreeMap::from([(String::new(), squeezes)]);
        let label = |v: &SeriesView| format!("CPU {}", v.cpu.unwrap_or(0));
        html::chart_set(&mut s, &r.timeline.t_s, &one, "squeezes/s", "no squeezes", label);
        s
    }
}
