//! `netprobe report`: exact counts by pod and reason, the kernel locations behind them, and
//! the agent's own losses, after a fixed collection window.

use std::{collections::HashMap, time::Instant};

use crate::{
    agent::Agent,
    cli::{Format, ReportArgs},
    drops::{attach::Health, DropSample},
    run::{self, Sink},
    tiers::Tier,
};

/// Locations listed in the report.
const TOP_LOCATIONS: usize = 10;
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub version: u32,
    pub duration_s: f64,
    /// The pod the report was limited to, if any.
    pub pod: Option<String>,
    pub drops_tier: Tier,
    /// Exact, from kernel counters; largest first.
    pub drops: Vec<DropCount>,
    /// From samples; largest first.
    pub locations: Vec<LocationCount>,
    pub samples: u64,
    pub health: Health,
}

#[derive(Debug, serde::Serialize)]
pub struct DropCount {
    pub pod: String,
    pub netns: u32,
    pub reason: String,
    pub reason_code: u32,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct LocationCount {
    pub location: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Default)]
struct Locations {
    by_site: HashMap<(String, String), u64>,
    samples: u64,
}

impl Sink for Locations {
    fn sample(&mut self, s: DropSample) {
        self.samples += 1;
        *self.by_site.entry((s.location, s.reason)).or_default() += 1;
    }
}

pub async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let mut shutdown = run::Shutdown::install()?;
    let mut agent = Agent::start(args.pod.as_deref())?;
    eprintln!(
        "netprobe: counting drops for {:.1?} (skb:kfree_skb via {}); Ctrl-C ends early",
        args.duration, agent.drops.tier
    );
    for s in &agent.drops.skipped {
        eprintln!("netprobe: {} skipped: {}", s.tier, s.why);
    }
    let started = Instant::now();
    let mut locations = Locations::default();
    run::collect(&mut agent, Some(args.duration), &mut locations, &mut shutdown).await?;
    let report = build(&mut agent, locations, started.elapsed().as_secs_f64())?;
    match args.format {
        Format::Text => print!("{}", text(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

fn build(agent: &mut Agent, locations: Locations, duration_s: f64) -> anyhow::Result<Report> {
    agent.pods.refresh();
    let only = agent.pod_filter.as_ref().map(|(_, netns)| *netns);
    let mut drops: Vec<DropCount> = agent
        .drops
        .counts()?
        .into_iter()
        .filter(|(k, _)| only.is_none_or(|n| n == k.netns))
        .map(|(k, count)| DropCount {
            pod: agent.pods.name(k.netns),
            netns: k.netns,
            reason: agent.reasons.name(k.reason),
            reason_code: k.reason,
            count,
        })
        .collect();
    drops.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
    let mut sites: Vec<LocationCount> = locations
        .by_site
        .into_iter()
        .map(|((location, reason), count)| LocationCount { location, reason, count })
        .collect();
    sites.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.location.cmp(&b.location)));
    sites.truncate(TOP_LOCATIONS);
    Ok(Report {
        version: REPORT_VERSION,
        duration_s,
        pod: agent.pod_filter.as_ref().map(|(n, _)| n.clone()),
        drops_tier: agent.drops.tier,
        drops,
        locations: sites,
        samples: locations.samples,
        health: agent.drops.health()?,
    })
}

pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let scope = r.pod.as_deref().map_or("all pods".to_owned(), |p| format!("pod {p}"));
    s += &format!(
        "netprobe report: {:.1} s, {scope}, drops hooked at skb:kfree_skb via {}\n\n",
        r.duration_s, r.drops_tier
    );
    let total: u64 = r.drops.iter().map(|d| d.count).sum();
    s += &format!("Drops by pod and reason (exact kernel counts, {total} in all)\n");
    if r.drops.is_empty() {
        s += "  none\n";
    } else {
        let w = r.drops.iter().map(|d| d.pod.len()).max().unwrap_or(3).max(3);
        s += &format!("  {:<w$}  {:<28} {:>10}\n", "POD", "REASON", "COUNT");
        for d in &r.drops {
            s += &format!("  {:<w$}  {:<28} {:>10}\n", d.pod, d.reason, d.count);
        }
    }
    s += &format!("\nTop kernel locations (from {} samples)\n", r.samples);
    if r.locations.is_empty() {
        s += "  none\n";
    } else {
        s += &format!("  {:>8}  {:<40} {}\n", "COUNT", "LOCATION", "REASON");
        for l in &r.locations {
            s += &format!("  {:>8}  {:<40} {}\n", l.count, l.location, l.reason);
        }
    }
    let h = &r.health;
    s += &format!(
        "\nLost samples: {} (no room in the ring buffer; the counts above are exact regardless)\n",
        h.lost_samples
    );
    if h.counter_overflow > 0 {
        s += &format!(
            "WARNING: {} drops found the (netns, reason) counter map full and are missing from the table\n",
            h.counter_overflow
        );
    }
    if h.read_errors > 0 {
        s += &format!("Kernel reads that failed: {} (some samples lack fields)\n", h.read_errors);
    }
    s
}
