//! `netprobe bursts`: per-bin packet rates of a pod's interfaces (or the node's, by pod), their
//! distribution, and the bursts found in them next to the squeezes and backlog drops of the
//! same moments.

use crate::{
    agent::{Agent, AgentConfig, BurstsConfig},
    cli::{BurstsArgs, Format},
    event::Event,
    families::bursts::{
        histogram::{short, Rates, Summary},
        BurstEvent,
    },
    families::drops::sites,
    families::softnet::on_squeeze::RunHooks,
    family::Family,
    pods::selection::Selection,
    run::{self, Sink},
};
use netprobe_common::bursts::PROBES;

const BURSTS_VERSION: u32 = 2;
/// Bursts listed in text output.
const TEXT_BURSTS: usize = 20;

/// A squeezed run or a backlog drop, to line up with bursts.
struct Pressure {
    ts_ns: u64,
    cpu: u32,
    squeezes: u64,
    backlog_drops: u64,
}

#[derive(Default)]
struct Collector {
    bursts: Vec<BurstEvent>,
    pressure: Vec<Pressure>,
}

impl Sink for Collector {
    fn event(&mut self, event: Event) {
        match event {
            Event::Burst(b) => self.bursts.push(b),
            Event::Squeeze(q) => self.pressure.push(Pressure {
                ts_ns: q.ts_ns,
                cpu: q.cpu,
                squeezes: u64::from(q.squeezes),
                backlog_drops: 0,
            }),
            Event::Drop(d) if sites::function(&d.location) == sites::BACKLOG_FULL => self
                .pressure
                .push(Pressure { ts_ns: d.ts_ns, cpu: d.cpu, squeezes: 0, backlog_drops: 1 }),
            _ => {}
        }
    }
}

#[derive(serde::Serialize)]
struct Output {
    version: u32,
    scope: String,
    bin_us: f64,
    threshold: String,
    duration_s: f64,
    interfaces: Vec<InterfaceOut>,
    pods: Vec<PodOut>,
    bursts: Vec<BurstOut>,
    /// Per-CPU burst records the kernel sent.
    kernel_records: u64,
    missed_bins: u64,
    lost_samples: u64,
}

#[derive(serde::Serialize)]
struct InterfaceOut {
    ifindex: u32,
    name: String,
    pod: String,
    direction: &'static str,
    #[serde(flatten)]
    rates: RatesOut,
}

#[derive(serde::Serialize)]
struct PodOut {
    pod: String,
    direction: &'static str,
    interfaces: Vec<String>,
    #[serde(flatten)]
    rates: RatesOut,
}

#[derive(serde::Serialize)]
struct RatesOut {
    #[serde(flatten)]
    summary: Summary,
    #[serde(skip)]
    chart: String,
}

impl RatesOut {
    fn of(r: &Rates) -> Self {
        let p: Vec<String> =
            r.percentiles().iter().map(|(l, v)| format!("{l} {}", short(*v))).collect();
        Self {
            summary: r.summary(),
            chart: format!("{}  per-bin rate, pps: {}\n", r.chart(40), p.join("  ")),
        }
    }
}

#[derive(serde::Serialize)]
struct BurstOut {
    #[serde(flatten)]
    burst: BurstEvent,
    /// Squeezed NET_RX runs and backlog-full drops (sampled) within a bin of it.
    squeezes: u64,
    backlog_drops: u64,
    pressure_cpus: Vec<u32>,
}

pub async fn bursts(
    args: BurstsArgs,
    cri_socket: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let bin_ns = args.bin.as_nanos() as u64;
    if !(100_000..=10_000_000).contains(&bin_ns) {
        anyhow::bail!("--bin must be between 100us and 10ms");
    }
    let mut shutdown = run::Shutdown::install()?;
    let config = AgentConfig {
        forget_after: crate::agent::FORGET_AFTER,
        selection: Selection::pod(args.pod.clone()),
        cri_socket,
        families: vec![Family::Drops, Family::Softnet, Family::Bursts],
        tier: None,
        // Each burst is shown with the squeezed runs of the same moments.
        softnet_runs: RunHooks::Always,
        bursts: BurstsConfig {
            bin_ns,
            threshold: args.threshold,
            interface: args.interface.clone(),
            directions: args.direction.list(),
            histograms: true,
            merge_gap_ns: args.merge_gap.as_nanos() as u64,
        },
        drop_samples: true,
        linklocal: Default::default(),
    };
    let Some(mut agent) = shutdown.start(move || Agent::start(config)).await? else {
        return Ok(());
    };
    let live = agent.bursts().expect("the bursts family bins");
    for (direction, ifindex) in &live.reader.skipped {
        eprintln!(
            "netprobe: not binning {} {}: the {PROBES} slots its ifindex may take are taken by other interfaces",
            live.scope.name(*ifindex),
            direction.name()
        );
    }
    let scope = live.scope.label.clone();
    eprintln!(
        "netprobe: binning {scope} every {:?} ({}); Ctrl-C ends early",
        args.bin,
        agent.describe()
    );
    let started = std::time::Instant::now();
    let mut c = Collector::default();
    run::collect(&mut agent, Some(args.duration), &mut c, &mut shutdown).await?;
    let lost_samples = agent.health()?.lost_samples;
    let live = agent.bursts().expect("started above");
    if let Some(e) = &live.error {
        anyhow::bail!("reading the bins: {e}");
    }
    let h = live.histograms.as_ref().expect("asked for");
    let name = |i: u32| live.scope.name(i);
    let pod_of = |i: u32| live.scope.interfaces.get(&i).map_or_else(String::new, |x| x.pod.clone());
    let out = Output {
        version: BURSTS_VERSION,
        scope,
        bin_us: bin_ns as f64 / 1e3,
        threshold: args.threshold.label(),
        duration_s: started.elapsed().as_secs_f64(),
        interfaces: h
            .interfaces
            .iter()
            .filter(|(_, r)| r.packets > 0)
            .map(|((d, i), r)| InterfaceOut {
                ifindex: *i,
                name: name(*i),
                pod: pod_of(*i),
                direction: d.name(),
                rates: RatesOut::of(r),
            })
            .collect(),
        pods: h
            .pods
            .iter()
            .filter(|(_, r)| r.packets > 0)
            .map(|((pod, d), r)| PodOut {
                pod: pod.clone(),
                direction: d.name(),
                interfaces: h
                    .interfaces
                    .keys()
                    .filter(|(dir, i)| dir == d && pod_of(*i) == *pod)
                    .map(|(_, i)| name(*i))
                    .collect(),
                rates: RatesOut::of(r),
            })
            .collect(),
        bursts: c.bursts.into_iter().map(|b| burst_out(b, bin_ns, &c.pressure)).collect(),
        kernel_records: live.merger.records,
        missed_bins: live.reader.missed_bins,
        lost_samples,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Format::Text => print!("{}", text(&out)),
    }
    Ok(())
}

fn burst_out(burst: BurstEvent, bin_ns: u64, pressure: &[Pressure]) -> BurstOut {
    let (from, to) = (
        burst.start_ns.saturating_sub(bin_ns),
        burst.start_ns + (burst.duration_us * 1e3) as u64 + bin_ns,
    );
    let near: Vec<&Pressure> = pressure.iter().filter(|p| (from..to).contains(&p.ts_ns)).collect();
    let mut cpus: Vec<u32> = near.iter().map(|p| p.cpu).collect();
    cpus.sort_unstable();
    cpus.dedup();
    BurstOut {
        burst,
        squeezes: near.iter().map(|p| p.squeezes).sum(),
        backlog_drops: near.iter().map(|p| p.backlog_drops).sum(),
        pressure_cpus: cpus,
    }
}

fn text(o: &Output) -> String {
    let mut s = format!(
        "netprobe bursts: {}, {:.0} us bins, threshold {}, {:.1} s\n",
        o.scope, o.bin_us, o.threshold, o.duration_s
    );
    for i in &o.interfaces {
        s += &format!(
            "\n{} {} (ifindex {}, pod {}): {} bins, {} packets\n",
            i.name, i.direction, i.ifindex, i.pod, i.rates.summary.bins, i.rates.summary.packets
        );
        s += &i.rates.chart;
    }
    for p in &o.pods {
        s += &format!(
            "\npod {} {} ({}): {} bins, {} packets\n",
            p.pod,
            p.direction,
            p.interfaces.join(", "),
            p.rates.summary.bins,
            p.rates.summary.packets
        );
        s += &p.rates.chart;
    }
    s += &format!("\nBursts: {}\n", o.bursts.len());
    for b in o.bursts.iter().take(TEXT_BURSTS) {
        let e = &b.burst;
        s += &format!(
            "  {} {} {} ({}): {} pkts in {:.0} us, peak {} pps on CPU {}; {} squeezes, {} backlog drops{}\n",
            e.time.get(11..26).unwrap_or(&e.time),
            e.interface,
            e.direction.name(),
            e.pod,
            e.packets,
            e.duration_us,
            short(e.peak_pps as u64),
            e.cpu,
            b.squeezes,
            b.backlog_drops,
            if b.pressure_cpus.is_empty() { String::new() } else { format!(" on CPU {:?}", b.pressure_cpus) }
        );
    }
    if o.bursts.len() > TEXT_BURSTS {
        s += &format!("  ... {} more (--format json has them all)\n", o.bursts.len() - TEXT_BURSTS);
    }
    if o.missed_bins > 0 {
        s += &format!(
            "WARNING: {} bins were overwritten before they could be read\n",
            o.missed_bins
        );
    }
    s
}
