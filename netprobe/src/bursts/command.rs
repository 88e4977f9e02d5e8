//! `netprobe bursts`: per-bin packet rates of a pod's interfaces (or the node's), their
//! distribution, and the bursts found in them next to the squeezes and backlog drops of the
//! same moments.

use std::collections::BTreeMap;

use super::{
    detect::{Burst, Detector, Threshold},
    histogram::{short, Rates},
    BinReader, BinTotal, Scope,
};
use crate::{
    agent::{Agent, Family},
    cli::{BurstsArgs, Format},
    drops::sites,
    event::Event,
    run::{self, Sink},
};

const BURSTS_VERSION: u32 = 1;
/// Bursts listed in text output.
const TEXT_BURSTS: usize = 20;

/// A squeezed run or a backlog drop, to line up with bursts.
struct Pressure {
    ts_ns: u64,
    cpu: u32,
    squeezes: u64,
    backlog_drops: u64,
}

struct Collector {
    reader: BinReader,
    detector: Detector,
    rates: BTreeMap<u32, Rates>,
    bursts: Vec<Burst>,
    pressure: Vec<Pressure>,
    error: Option<crate::error::Error>,
}

impl Collector {
    fn take(&mut self, bins: Vec<BinTotal>) {
        let bin_s = self.reader.bin_ns() as f64 / 1e9;
        for b in bins {
            self.rates.entry(b.ifindex).or_insert_with(Rates::new).record(
                b.packets as f64 / bin_s,
                b.packets,
                b.bytes,
            );
            self.bursts.extend(self.detector.push(&b));
        }
    }

    fn read(&mut self) {
        match self.reader.read() {
            Ok(bins) => self.take(bins),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
    }
}

impl Sink for Collector {
    fn event(&mut self, event: Event) {
        match event {
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

    fn tick(&mut self, _agent: &mut Agent) {
        self.read();
    }

    fn stopped(&self) -> bool {
        self.error.is_some()
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
    bursts: Vec<BurstOut>,
    missed_bins: u64,
    lost_samples: u64,
}

#[derive(serde::Serialize)]
struct InterfaceOut {
    ifindex: u32,
    name: String,
    bins: u64,
    packets: u64,
    bytes: u64,
    /// Per-bin rate percentiles, packets per second.
    percentiles: BTreeMap<&'static str, u64>,
    /// (low, high, bins) per rate range.
    histogram: Vec<(u64, u64, u64)>,
}

#[derive(serde::Serialize)]
struct BurstOut {
    interface: String,
    /// CLOCK_MONOTONIC ns of its first bin, and wall-clock time.
    start_ns: u64,
    time: String,
    duration_us: f64,
    packets: u64,
    bytes: u64,
    peak_pps: f64,
    cpu: u32,
    /// Squeezed NET_RX runs and backlog-full drops (sampled) within a bin of it.
    squeezes: u64,
    backlog_drops: u64,
    pressure_cpus: Vec<u32>,
}

pub async fn bursts(args: BurstsArgs) -> anyhow::Result<()> {
    let threshold = args.threshold;
    let bin_ns = args.bin.as_nanos() as u64;
    if !(100_000..=10_000_000).contains(&bin_ns) {
        anyhow::bail!("--bin must be between 100us and 10ms");
    }
    let mut shutdown = run::Shutdown::install()?;
    let pod = args.pod.clone();
    let families = vec![Family::Drops, Family::Softnet, Family::Bursts];
    let Some(mut agent) = shutdown.start(move || Agent::start(pod.as_deref(), &families)).await?
    else {
        return Ok(());
    };
    let Scope { netns, label: scope, interfaces: names } = Scope::of(&agent)?;
    let ifindexes: Vec<u32> = match &args.interface {
        Some(want) => {
            let found = names.iter().find(|(_, n)| *n == want).map(|(i, _)| *i);
            let Some(i) = found else {
                let known: Vec<&str> = names.values().map(String::as_str).collect();
                anyhow::bail!("no interface `{want}` in {scope}; there are: {}", known.join(", "));
            };
            vec![i]
        }
        None => Scope { netns, label: String::new(), interfaces: names.clone() }.watched(),
    };
    let reader = agent.start_bins(netns, bin_ns, ifindexes)?;
    eprintln!(
        "netprobe: binning {scope} every {:?} ({}); Ctrl-C ends early",
        args.bin,
        agent.describe()
    );
    let started = std::time::Instant::now();
    let mut c = Collector {
        reader,
        detector: Detector::new(threshold, bin_ns),
        rates: BTreeMap::new(),
        bursts: Vec::new(),
        pressure: Vec::new(),
        error: None,
    };
    run::collect(&mut agent, Some(args.duration), &mut c, &mut shutdown).await?;
    c.read();
    if let Some(e) = c.error.take() {
        return Err(e.into());
    }
    let mut bursts = std::mem::take(&mut c.bursts);
    bursts.extend(c.detector.finish());
    bursts.sort_by_key(|b| b.first_bin);

    let name = |i: u32| names.get(&i).cloned().unwrap_or_else(|| format!("if{i}"));
    let out = Output {
        version: BURSTS_VERSION,
        scope,
        bin_us: bin_ns as f64 / 1e3,
        threshold: match threshold {
            Threshold::Pps(p) => format!("{}pps", p as u64),
            Threshold::Relative(k) => format!("{k}x the recent average"),
        },
        duration_s: started.elapsed().as_secs_f64(),
        interfaces: c
            .rates
            .iter()
            .map(|(i, r)| InterfaceOut {
                ifindex: *i,
                name: name(*i),
                bins: r.bins,
                packets: r.packets,
                bytes: r.bytes,
                percentiles: r.percentiles().into_iter().collect(),
                histogram: r.ranges(),
            })
            .collect(),
        bursts: bursts
            .iter()
            .map(|b| burst_out(b, bin_ns, &c.pressure, &agent, name(b.ifindex)))
            .collect(),
        missed_bins: c.reader.missed_bins,
        lost_samples: agent.health()?.lost_samples,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        Format::Text => print!("{}", text(&out, &c.rates)),
    }
    Ok(())
}

fn burst_out(
    b: &Burst,
    bin_ns: u64,
    pressure: &[Pressure],
    agent: &Agent,
    interface: String,
) -> BurstOut {
    let start_ns = b.first_bin * bin_ns;
    let (from, to) = (start_ns.saturating_sub(bin_ns), start_ns + (b.bins + 1) * bin_ns);
    let near: Vec<&Pressure> = pressure.iter().filter(|p| (from..to).contains(&p.ts_ns)).collect();
    let mut cpus: Vec<u32> = near.iter().map(|p| p.cpu).collect();
    cpus.sort_unstable();
    cpus.dedup();
    BurstOut {
        interface,
        start_ns,
        time: agent.names.clock.wall(start_ns),
        duration_us: (b.bins * bin_ns) as f64 / 1e3,
        packets: b.packets,
        bytes: b.bytes,
        peak_pps: b.peak_pps,
        cpu: b.cpu,
        squeezes: near.iter().map(|p| p.squeezes).sum(),
        backlog_drops: near.iter().map(|p| p.backlog_drops).sum(),
        pressure_cpus: cpus,
    }
}

fn text(o: &Output, rates: &BTreeMap<u32, Rates>) -> String {
    let mut s = format!(
        "netprobe bursts: {}, {:.0} us bins, threshold {}, {:.1} s\n",
        o.scope, o.bin_us, o.threshold, o.duration_s
    );
    for i in &o.interfaces {
        s += &format!(
            "\n{} (ifindex {}): {} bins, {} packets\n",
            i.name, i.ifindex, i.bins, i.packets
        );
        s += &rates[&i.ifindex].chart(40);
        let p: Vec<String> =
            i.percentiles.iter().map(|(l, v)| format!("{l} {}", short(*v))).collect();
        s += &format!("  per-bin rate, pps: {}\n", p.join("  "));
    }
    s += &format!("\nBursts: {}\n", o.bursts.len());
    for b in o.bursts.iter().take(TEXT_BURSTS) {
        s += &format!(
            "  {} {}: {} pkts in {:.0} us, peak {} pps on CPU {}; {} squeezes, {} backlog drops{}\n",
            b.time.get(11..26).unwrap_or(&b.time),
            b.interface,
            b.packets,
            b.duration_us,
            short(b.peak_pps as u64),
            b.cpu,
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
