//! Samples of every hook family, decoded from the one ring buffer into one timeline. Each
//! sample type is its family's (`families/<name>/`), and says through `Sample` its netns, its
//! pod and its `watch` line; `events!` lists them once, with the ring-buffer kind each
//! decodes from.

use netprobe_common::event::kind;

use crate::{
    families::{
        bursts::BurstEvent,
        conntrack::{self, ConntrackChange, TableFullMessage},
        drops::{self, DropSample},
        listen::{ListenOverflow, ListenQueueChange},
        ports::{self, PortSample},
        softnet::{self, SqueezeSample},
        tcp::{self, TcpSample},
    },
    names::Names,
    wire,
};

/// What one family's samples tell every output.
pub trait Sample {
    /// The netns it happened in; 0 for none.
    fn netns(&self) -> u32;
    /// Names its pod, when the netns was unknown at decoding.
    fn set_pod(&mut self, pod: String);
    /// Its columns in `watch`.
    fn line(&self) -> Line<'_>;
}

/// `Sample::netns` and `set_pod` of a sample type with `netns` and `pod` fields.
macro_rules! in_pod {
    () => {
        fn netns(&self) -> u32 {
            self.netns
        }

        fn set_pod(&mut self, pod: String) {
            self.pod = pod;
        }
    };
}
pub(crate) use in_pod;

/// The columns of one `watch` line.
pub struct Line<'a> {
    pub time: &'a str,
    pub cpu: Option<u32>,
    pub pod: &'a str,
    pub what: &'a str,
    pub flow: String,
    pub tail: String,
}

/// Declares `Event`, one variant per sample type, and for the ring buffer's samples the
/// record kind they decode from and their decoder.
macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident($sample:ty) $(= $kind:path => $decode:path)?,)*) => {
        /// One sampled event; `type` names the family in JSON (docs/json.md).
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum Event {
            $($(#[$doc])* $variant($sample),)*
        }

        impl Event {
            /// None for a short record or a kind this build does not know.
            pub fn decode(bytes: &[u8], names: &Names) -> Option<Self> {
                match wire::header(bytes)?.kind {
                    $($($kind => $decode(bytes, names).map(Event::$variant),)?)*
                    _ => None,
                }
            }

            fn sample(&self) -> &dyn Sample {
                match self {
                    $(Event::$variant(s) => s,)*
                }
            }

            fn sample_mut(&mut self) -> &mut dyn Sample {
                match self {
                    $(Event::$variant(s) => s,)*
                }
            }
        }
    };
}

events!(
    Drop(DropSample) = kind::DROP => drops::decode::decode,
    Tcp(TcpSample) = kind::TCP => tcp::decode::decode,
    Port(PortSample) = kind::PORT => ports::decode::decode,
    /// Not a ring-buffer sample: a burst found in the bins (watch/report --events bursts).
    Burst(BurstEvent),
    /// A NET_RX softirq run squeezed on its budget.
    Squeeze(SqueezeSample) = kind::SQUEEZE => softnet::decode,
    /// The kernel's "nf_conntrack: table full in netns N" console line.
    ConntrackTableFull(TableFullMessage) = kind::CONSOLE => conntrack::decode,
    /// Not a ring-buffer sample: a pod's listen-queue counters grew since the last poll.
    ListenQueue(ListenQueueChange),
    /// Not a ring-buffer sample: a pod's conntrack counters grew since the last poll.
    Conntrack(ConntrackChange),
    /// Not a ring-buffer sample: a listener's accept-queue drops grew since the last poll.
    ListenOverflow(ListenOverflow),
);

impl Event {
    pub fn netns(&self) -> u32 {
        self.sample().netns()
    }

    pub fn set_pod(&mut self, pod: String) {
        self.sample_mut().set_pod(pod);
    }

    /// One aligned line for `watch`.
    pub fn text(&self) -> String {
        let Line { time, cpu, pod, what, flow, tail } = self.sample().line();
        let time = time.get(11..26).unwrap_or(time);
        let cpu = cpu.map_or("-".to_owned(), |c| c.to_string());
        format!("{time} cpu{cpu:<2} {pod:<14} {what:<20} {flow:<46} {tail}")
    }
}
