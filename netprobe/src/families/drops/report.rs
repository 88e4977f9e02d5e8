//! Drops in the report: exact counts per pod and reason, and the top kernel locations.

use std::collections::HashMap;

use crate::{
    frames::Snapshot,
    reasons::Reasons,
    report::{
        html,
        section::{self, Context, Section},
        text::table,
        timeline::{Add, Metric, SeriesView},
        Report,
    },
};

/// Rows listed of the drop locations.
const TOP: usize = 10;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DropCount {
    pub pod: String,
    pub netns: u32,
    pub reason: String,
    pub reason_code: Option<u32>,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct LocationCount {
    pub location: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Drops {
    /// Exact, from kernel counters; largest first.
    pub drops: Vec<DropCount>,
    /// Exact, from kernel counters keyed by location; largest first.
    pub locations: Vec<LocationCount>,
}

/// Per pod and reason, the drops a drop metric counted over the report; largest first.
pub fn rows(c: &Context, metric: Metric) -> Vec<DropCount> {
    let mut rows: Vec<DropCount> = c
        .timeline
        .totals(metric)
        .filter(|(s, ..)| c.keep(*s))
        .map(|(s, reason, count)| DropCount {
            pod: c.name(Context::id_of(s)),
            netns: c.inode(Context::id_of(s)),
            reason: reason.to_owned(),
            reason_code: c.header.reasons.value(reason),
            count,
        })
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
    rows
}

#[derive(Default)]
pub struct Part;

impl section::Part for Part {
    type Section = Drops;

    fn totals(s: &Snapshot, reasons: &Reasons, add: &mut Add) {
        super::timeline::totals(s, reasons, add);
    }

    fn section(&self, c: &Context) -> Drops {
        let mut by_location: HashMap<&str, u64> = HashMap::new();
        for (_, label, count) in
            c.timeline.totals(Metric::DROP_LOCATION).filter(|(s, ..)| c.keep(*s))
        {
            *by_location.entry(label).or_default() += count;
        }
        let mut locations: Vec<LocationCount> = by_location
            .into_iter()
            .map(|(label, count)| {
                let (location, reason) = label.split_once(' ').unwrap_or((label, ""));
                LocationCount { location: location.into(), reason: reason.into(), count }
            })
            .collect();
        locations.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.location.cmp(&b.location)));
        locations.truncate(TOP);
        Drops { drops: rows(c, Metric::DROPS), locations }
    }
}

impl Section for Drops {
    const TEXT: u8 = 10;
    const HTML: u8 = 10;

    fn text(&self, r: &Report) -> String {
        if !r.ran(crate::family::Family::Drops) {
            return String::new();
        }
        let total: u64 = self.drops.iter().map(|d| d.count).sum();
        let mut s = format!("\nDrops by pod and reason (exact kernel counts, {total} in all)\n");
        let rows =
            self.drops.iter().map(|d| [d.pod.clone(), d.reason.clone(), d.count.to_string()]);
        s += &table(["POD", "REASON", "COUNT"], rows);
        s += "\nTop kernel drop locations (exact)\n";
        let rows = self
            .locations
            .iter()
            .map(|l| [l.count.to_string(), l.location.clone(), l.reason.clone()]);
        s += &table(["COUNT", "LOCATION", "REASON"], rows);
        s
    }

    fn html(&self, r: &Report) -> String {
        let mut s = "<h2>Drops per reason over time, per pod</h2>\n".to_owned();
        let drops: Vec<&SeriesView> = html::series(r, Metric::DROPS);
        let by_pod = html::group(&drops, |v| v.pod.clone().unwrap_or_default());
        html::charts(&mut s, &r.timeline.t_s, &by_pod, "drops/s", "no drops");
        s
    }
}
