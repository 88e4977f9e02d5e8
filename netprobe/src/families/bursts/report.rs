//! Bursts in the report: how many were found, the largest, the per-bin rate distribution per
//! pod and direction, and a series of burst starts per pod.

use std::{collections::BTreeMap, fmt::Write};

use super::{
    histogram::{short, PodRates},
    BurstEvent,
};
use crate::{
    event::Event,
    family::Family,
    frames::Frame,
    report::{
        html,
        section::{self, Context, Section},
        text::table,
        timeline::{Metric, SeriesView, Timeline},
        Report,
    },
};

/// Bursts listed.
const TOP: usize = 10;

impl Metric {
    /// Bursts starting in the interval, per netns (from burst events, in the view only).
    pub const BURSTS: Metric = Metric::counted(900, "bursts");
}

#[derive(Debug, serde::Serialize)]
pub struct Bursts {
    /// When the bursts family ran: how many were found, and the largest.
    pub burst_count: u64,
    pub bursts: Vec<BurstEvent>,
    /// With bursts: the distribution of per-bin packet rates, per pod and direction.
    pub burst_rates: Vec<PodRates>,
}

#[derive(Default)]
pub struct Part {
    bursts: Vec<BurstEvent>,
    rates: Vec<PodRates>,
}

impl Part {
    fn in_scope<'a>(&'a self, c: &'a Context) -> impl Iterator<Item = &'a BurstEvent> {
        self.bursts.iter().filter(|b| c.in_scope(b.netns))
    }
}

impl section::Part for Part {
    type Section = Bursts;

    fn frame(&mut self, frame: &Frame, _: &Timeline) {
        match frame {
            Frame::Event(Event::Burst(b)) => self.bursts.push(b.clone()),
            Frame::Rates(r) => self.rates = r.clone(),
            _ => {}
        }
    }

    /// Bursts starting in each interval, per netns.
    fn series(&self, c: &Context, out: &mut Vec<SeriesView>) {
        let ends = &c.timeline.ends_ns;
        let mut per_netns: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for b in self.in_scope(c) {
            // The interval the burst started in; ones after the last snapshot count in the last.
            let Some(last) = ends.len().checked_sub(1) else { break };
            let i = ends.iter().position(|e| b.start_ns <= *e).unwrap_or(last);
            per_netns.entry(b.netns).or_insert_with(|| vec![0; ends.len()])[i] += 1;
        }
        out.extend(per_netns.into_iter().map(|(netns, values)| SeriesView {
            metric: Metric::BURSTS,
            pod: Some(c.name(netns)),
            netns: Some(netns),
            cpu: None,
            label: String::new(),
            values,
        }));
    }

    fn section(&self, c: &Context) -> Bursts {
        let mut bursts: Vec<BurstEvent> = self.in_scope(c).cloned().collect();
        let burst_count = bursts.len() as u64;
        bursts.sort_by_key(|b| std::cmp::Reverse(b.packets));
        bursts.truncate(TOP);
        let burst_rates = self
            .rates
            .iter()
            .filter(|r| !c.limited() || c.lookup(&r.pod).is_some_and(|n| c.in_scope(n)))
            .cloned()
            .collect();
        Bursts { burst_count, bursts, burst_rates }
    }
}

impl Section for Bursts {
    const TEXT: u8 = 50;
    const HTML: u8 = 40;

    fn text(&self, r: &Report) -> String {
        if !r.ran(Family::Bursts) {
            return String::new();
        }
        let mut s = format!("\nMicrobursts ({} found; the largest)\n", self.burst_count);
        let rows = self.bursts.iter().map(|b| {
            [
                b.time.get(11..26).unwrap_or(&b.time).to_owned(),
                b.pod.clone(),
                b.interface.clone(),
                format!("{:?}", b.direction).to_lowercase(),
                b.packets.to_string(),
                format!("{:.0}", b.duration_us),
                format!("{:.0}", b.peak_pps),
            ]
        });
        s += &table(["START", "POD", "INTERFACE", "DIR", "PACKETS", "US", "PEAK PPS"], rows);
        s += "Per-bin packet rates by pod (1 ms bins; pps)\n";
        let rows = self.burst_rates.iter().map(|p| {
            let pct = |k: &str| p.rates.percentiles.get(k).map_or("-".into(), |v| short(*v));
            [
                p.pod.clone(),
                format!("{:?}", p.direction).to_lowercase(),
                p.rates.bins.to_string(),
                p.rates.packets.to_string(),
                pct("p50"),
                pct("p99"),
                pct("max"),
            ]
        });
        s += &table(["POD", "DIR", "BINS", "PACKETS", "P50", "P99", "MAX"], rows);
        s
    }

    /// Per pod and direction, how many bins had each packet rate: bursts are the far right.
    fn html(&self, r: &Report) -> String {
        let mut s = "<h2>Microbursts: per-bin packet rates (1 ms bins)</h2>\n".to_owned();
        if self.burst_rates.is_empty() {
            let why = if r.ran(Family::Bursts) {
                "no traffic was binned"
            } else {
                "the bursts family did not run (--events bursts)"
            };
            let _ = writeln!(s, "<p class=\"none\">{why}</p>");
            return s;
        }
        let _ = writeln!(
            s,
            "<p>{} bursts found; the largest are in the tables below.</p>",
            self.burst_count
        );
        for p in &self.burst_rates {
            let h = &p.rates.histogram;
            let counts: Vec<u64> = h.iter().map(|(.., n)| *n).collect();
            let label = |(lo, hi, _): &(u64, u64, u64)| match hi {
                0 => "0 pps".to_owned(),
                _ => format!("{}-{} pps", short(*lo), short(*hi)),
            };
            let axis =
                (h.first().map(label).unwrap_or_default(), h.last().map(label).unwrap_or_default());
            let pct: Vec<String> =
                p.rates.percentiles.iter().map(|(k, v)| format!("{k} {}", short(*v))).collect();
            let title =
                format!("{} {:?}: bins per packet rate; {}", p.pod, p.direction, pct.join(", "));
            html::stacked_bars(
                &mut s,
                &title,
                counts.len(),
                &axis,
                &[("bins".to_owned(), counts.as_slice())],
            );
        }
        s
    }

    fn pods(&self) -> Vec<&str> {
        self.bursts.iter().map(|b| b.pod.as_str()).collect()
    }
}
