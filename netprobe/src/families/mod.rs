//! The hook families: each directory owns its hooks, the decoding of its samples, its
//! timeline series, its report section and its findings. `crate::family::Family` lists them;
//! `sections!` below registers their report parts.

pub mod bursts;
pub mod conntrack;
pub mod drops;
pub mod linklocal;
pub mod listen;
pub mod ports;
pub mod softnet;
pub mod tcp;

use crate::{
    agent::Agent,
    error::Error,
    frames::{Frame, Snapshot},
    reasons::Reasons,
    report::{
        findings::Rule,
        section::{Context, Part, Section},
        timeline::{Add, SeriesView, Timeline},
        Report,
    },
};

/// Declares every family's exact counters in a snapshot (`families/<name>/snapshot.rs`): its
/// rows in `Rows`, flattened into the snapshot in this order (docs/recording.md), and how the
/// recorder reads them. A new family goes last, as `#[serde(default)] name: Row`, so that
/// older recordings still read.
macro_rules! snapshot_rows {
    ($($(#[$attr:meta])* $family:ident: $row:ty),* $(,)?) => {
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct Rows {
            $($(#[$attr])* pub $family: Vec<$row>,)*
        }

        impl Rows {
            pub fn read(agent: &Agent) -> Result<Self, Error> {
                Ok(Self { $($family: $family::snapshot::read(agent)?,)* })
            }
        }
    };
}

snapshot_rows!(
    drops: drops::snapshot::DropRow,
    tcp: tcp::snapshot::TcpRow,
    ports: ports::snapshot::PortRow,
    softnet: softnet::CpuSoftnet,
    #[serde(default)]
    linklocal: linklocal::snapshot::LinkLocalRow,
    #[serde(default)]
    conntrack: conntrack::snapshot::ConntrackCountRow,
);

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

sections!(drops, tcp, listen, conntrack, softnet, bursts, ports, linklocal);

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
