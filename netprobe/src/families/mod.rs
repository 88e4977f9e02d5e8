//! The hook families: each directory owns its hooks, the decoding of its samples, its
//! timeline series, its report section and its findings. `crate::family::Family` lists them;
//! `snapshot_rows!` below registers their count maps, `sections!` their report parts and
//! `METRICS` their /metrics.

pub mod bursts;
pub mod conntrack;
pub mod counts;
pub mod drops;
pub mod linklocal;
pub mod listen;
pub mod ports;
pub mod softnet;
pub mod tcp;

use std::collections::BTreeSet;

use aya::Ebpf;

use crate::{
    ena,
    error::Error,
    families::counts::Counts,
    family::Family,
    frames::{Frame, Snapshot},
    names::Names,
    reasons::Reasons,
    report::{
        findings::Rule,
        section::{Context, Part, Section},
        timeline::{Add, SeriesView, Timeline},
        Report,
    },
};

/// Declares every family's exact counters (`families/<name>/snapshot.rs`, a `Counts`): its
/// maps in `CountMaps`, opened when it attaches, and its rows in `Rows`, flattened into the
/// snapshot in this order (docs/recording.md). A new family goes last, as
/// `#[serde(default)] name`, so that older recordings still read.
macro_rules! snapshot_rows {
    ($($(#[$attr:meta])* $family:ident),* $(,)?) => {
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct Rows {
            $($(#[$attr])* pub $family: Vec<<$family::snapshot::Counts as Counts>::Row>,)*
        }

        /// The count maps of the families that attached.
        pub struct CountMaps {
            $($family: Option<$family::snapshot::Counts>,)*
        }

        impl CountMaps {
            pub fn open(bpf: &mut Ebpf, attached: impl Fn(Family) -> bool) -> Result<Self, Error> {
                Ok(Self { $($family: open(bpf, &attached)?,)* })
            }

            pub fn rows(&self, names: &Names) -> Result<Rows, Error> {
                Ok(Rows { $($family: rows(&self.$family, names)?,)* })
            }

            /// The netns the families' keys count.
            pub fn netns(&self) -> BTreeSet<u32> {
                let mut out = BTreeSet::new();
                $(out.extend(self.$family.iter().flat_map(Counts::netns));)*
                out
            }

            /// Deletes every family's keys of `netns`.
            pub fn forget(&mut self, netns: u32) {
                $(if let Some(c) = &mut self.$family { c.forget(netns) })*
            }
        }
    };
}

snapshot_rows!(
    drops,
    tcp,
    ports,
    softnet,
    #[serde(default)]
    linklocal,
    #[serde(default)]
    conntrack,
);

fn open<C: Counts>(bpf: &mut Ebpf, attached: impl Fn(Family) -> bool) -> Result<Option<C>, Error> {
    attached(C::FAMILY).then(|| C::open(bpf)).transpose()
}

fn rows<C: Counts>(c: &Option<C>, names: &Names) -> Result<Vec<C::Row>, Error> {
    c.as_ref().map_or(Ok(Vec::new()), |c| c.rows(names))
}

/// Declares every family's report part: its finding rules, its builder state in `Parts`, its
/// rows in `Sections` (flattened into the report's JSON in this order), its text and HTML by
/// their ranks, and its timeline series (`Part::totals`).
macro_rules! sections {
    ($($family:ident),* $(,)?) => {
        /// Every family's finding rules (`families/<name>/findings.rs`).
        pub const RULES: &[&dyn Rule] = &[$(&$family::findings::Rules,)*];

        /// Every family's report state while frames go by.
        #[derive(Default)]
        pub struct Parts {
            $($family: $family::report::Part,)*
        }

        /// Every family's rows.
        #[derive(Debug, serde::Serialize)]
        pub struct Sections {
            $(#[serde(flatten)] pub $family: <$family::report::Part as Part>::Section,)*
        }

        /// Every family's snapshot rows, as cumulative values of the timeline's series.
        pub fn totals(s: &Snapshot, reasons: &Reasons, add: &mut Add) {
            $(<$family::report::Part as Part>::totals(s, reasons, add);)*
        }

        impl Parts {
            pub fn frame(&mut self, frame: &Frame, timeline: &Timeline) {
                $(self.$family.frame(frame, timeline);)*
            }

            pub fn samples(&self) -> u64 {
                0 $(+ self.$family.samples())*
            }

            pub fn series(&self, c: &Context, out: &mut Vec<SeriesView>) {
                $(self.$family.series(c, out);)*
            }

            pub fn sections(&self, c: &Context) -> Sections {
                Sections { $($family: self.$family.section(c),)* }
            }
        }

        impl Sections {
            /// Each family's tables, in text rank order.
            pub fn text(&self, r: &Report) -> String {
                ranked(vec![$(ranked_text(&self.$family, r),)*])
            }

            /// Each family's charts, in HTML rank order.
            pub fn html(&self, r: &Report) -> String {
                ranked(vec![$(ranked_html(&self.$family, r),)*])
            }

            /// The pods the sections' sampled rows name.
            pub fn pods(&self) -> Vec<&str> {
                let mut out = Vec::new();
                $(out.extend(self.$family.pods());)*
                out
            }
        }
    };
}

// `ena` is no hook family: the node's ENA allowance counters, read with the kernel's own.
sections!(drops, tcp, listen, conntrack, softnet, bursts, ports, linklocal, ena);

/// Every family's /metrics (`families/<name>/metrics.rs`), in the exposition's order.
pub const METRICS: &[&dyn crate::daemon::metrics::Metrics] = &[
    &drops::metrics::Metrics,
    &tcp::metrics::Metrics,
    &ports::metrics::Metrics,
    &linklocal::metrics::Metrics,
    &listen::metrics::Metrics,
    &conntrack::metrics::Metrics,
    &softnet::metrics::Metrics,
    &bursts::metrics::Metrics,
    &ena::metrics::Metrics,
];

fn ranked_text<S: Section>(s: &S, r: &Report) -> (u8, String) {
    (S::TEXT, s.text(r))
}

fn ranked_html<S: Section>(s: &S, r: &Report) -> (u8, String) {
    (S::HTML, s.html(r))
}

fn ranked(mut parts: Vec<(u8, String)>) -> String {
    parts.sort_by_key(|(rank, _)| *rank);
    parts.into_iter().map(|(_, s)| s).collect()
}
