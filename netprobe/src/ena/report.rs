//! ENA in the report: each allowance counter's growth over the window and when it grew, and
//! the connections the instance could still track.

use std::{collections::BTreeMap, fmt::Write};

use super::{allowance, AVAILABLE};
use crate::{
    clock::Clock,
    frames::Frame,
    report::{
        html::esc,
        section::{self, Context, Section},
        text::table,
        timeline::Timeline,
        Report,
    },
};

/// An `*_allowance_exceeded` counter over the report (docs/json.md, `ena`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exceeded {
    pub interface: String,
    pub counter: String,
    /// `bw_in`, `bw_out`, `pps`, `conntrack` or `linklocal`.
    pub allowance: String,
    /// Growth over the report.
    pub growth: u64,
    /// The counter at the end.
    pub value: u64,
    /// The first and last second it grew in (wall clock), when it did.
    pub grew_from: Option<String>,
    pub grew_to: Option<String>,
    #[serde(skip)]
    pub grew_ns: Option<(u64, u64)>,
}

/// `conntrack_allowance_available` over the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Available {
    pub interface: String,
    /// At the end, and the fewest seen.
    pub value: u64,
    pub min: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct EnaReport {
    pub exceeded: Vec<Exceeded>,
    pub conntrack_allowance_available: Vec<Available>,
}

#[derive(Debug, serde::Serialize)]
pub struct Ena {
    /// The node's interfaces with ENA allowance counters; empty lists elsewhere.
    pub ena: EnaReport,
}

/// An exceeded counter over the snapshots.
struct Seen {
    growth: u64,
    last: u64,
    /// From the start of the first interval it grew in to the end of the last.
    grew: Option<(u64, u64)>,
}

/// What the report needs of the snapshots: each counter's growth and last value, when it grew,
/// and the fewest connections available.
#[derive(Default)]
pub struct Part {
    /// By (interface, counter).
    counters: BTreeMap<(String, String), Seen>,
    available: BTreeMap<String, (u64, u64)>,
    last_ns: Option<u64>,
}

impl section::Part for Part {
    type Section = Ena;

    fn frame(&mut self, frame: &Frame, _: &Timeline) {
        let Frame::Snapshot(s) = frame else { return };
        for i in &s.kernel.ena {
            for (name, v) in &i.counters {
                if name == AVAILABLE {
                    let a = self.available.entry(i.interface.clone()).or_insert((*v, *v));
                    *a = (*v, a.1.min(*v));
                    continue;
                }
                let key = (i.interface.clone(), name.clone());
                let c =
                    self.counters.entry(key).or_insert(Seen { growth: 0, last: *v, grew: None });
                // A device reset starts the driver's counters from 0 again.
                let grown = if *v >= c.last { *v - c.last } else { *v };
                if grown > 0 {
                    c.growth += grown;
                    let from = self.last_ns.unwrap_or(s.t_ns);
                    c.grew = Some((c.grew.map_or(from, |g| g.0), s.t_ns));
                }
                c.last = *v;
            }
        }
        self.last_ns = Some(s.t_ns);
    }

    /// The instance's allowances, whichever pods the report is limited to.
    fn section(&self, c: &Context) -> Ena {
        let clock = Clock::fixed(c.header.started_monotonic_ns, c.header.started_unix_ns);
        let exceeded = self
            .counters
            .iter()
            .map(|((interface, counter), c)| Exceeded {
                interface: interface.clone(),
                counter: counter.clone(),
                allowance: allowance(counter).unwrap_or(counter).to_owned(),
                growth: c.growth,
                value: c.last,
                grew_from: c.grew.map(|g| clock.wall(g.0)),
                grew_to: c.grew.map(|g| clock.wall(g.1)),
                grew_ns: c.grew,
            })
            .collect();
        let conntrack_allowance_available = self
            .available
            .iter()
            .map(|(interface, (value, min))| Available {
                interface: interface.clone(),
                value: *value,
                min: *min,
            })
            .collect();
        Ena { ena: EnaReport { exceeded, conntrack_allowance_available } }
    }
}

impl Section for Ena {
    /// First: the instance's limits come before what the node saw.
    const TEXT: u8 = 5;
    const HTML: u8 = 50;

    fn text(&self, _: &Report) -> String {
        let ena = &self.ena;
        if ena.exceeded.is_empty() && ena.conntrack_allowance_available.is_empty() {
            return String::new();
        }
        let mut s = "\nENA allowances (the driver's counters of packets the instance's \
                     allowances queued or dropped)\n"
            .to_owned();
        let rows = ena.exceeded.iter().map(|e| {
            [e.interface.clone(), e.allowance.clone(), e.growth.to_string(), e.value.to_string()]
        });
        s += &table(["INTERFACE", "ALLOWANCE", "EXCEEDED", "SINCE BOOT"], rows);
        for a in &ena.conntrack_allowance_available {
            s += &format!(
                "  {}: {AVAILABLE} {} at the end, {} at the fewest\n",
                a.interface, a.value, a.min
            );
        }
        s
    }

    fn html(&self, _: &Report) -> String {
        let ena = &self.ena;
        if ena.exceeded.is_empty() {
            return String::new();
        }
        let mut s = "<h2>ENA allowances</h2>\n<table><tr><th>interface</th><th>allowance</th>\
                     <th>exceeded in the window</th><th>since boot</th></tr>"
            .to_owned();
        for e in &ena.exceeded {
            let class = if e.growth > 0 { " class=\"critical\"" } else { "" };
            let _ = write!(
                s,
                "<tr{class}><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td></tr>",
                esc(&e.interface),
                esc(&e.counter),
                e.growth,
                e.value
            );
        }
        s += "</table>\n";
        for a in &ena.conntrack_allowance_available {
            let _ = writeln!(
                s,
                "<p class=\"meta\">{}: {AVAILABLE} {} at the end, {} at the fewest</p>",
                esc(&a.interface),
                a.value,
                a.min
            );
        }
        s
    }
}
