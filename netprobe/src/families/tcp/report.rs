//! TCP in the report: exact retransmits and resets per pod, and from samples the handshake
//! timeouts, where retransmitted segments went, resets after idle and hairpins (`patterns`).

use std::{collections::HashMap, net::IpAddr};

use super::{
    patterns::{Hairpin, IdleResets, Patterns, HAIRPIN_HEAD, IDLE_HEAD},
    TcpEventKind,
};
use crate::{
    event::Event,
    family::Family,
    frames::{Frame, Snapshot},
    reasons::Reasons,
    report::{
        html,
        section::{self, Context, Section},
        text::table,
        timeline::{Add, Metric, SeriesView, Timeline},
        Report,
    },
};

/// Rows listed in sampled tables.
const TOP: usize = 10;
/// SYN retransmits to one destination from which on it is a handshake-timeout pattern.
const HANDSHAKE_TIMEOUT_MIN: u64 = 2;

#[derive(Debug, serde::Serialize)]
pub struct TcpCount {
    pub pod: String,
    pub netns: u32,
    pub event: String,
    /// `retransmit_failed`: what tcp_retransmit_skb returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct HandshakeTimeout {
    pub pod: String,
    pub netns: u32,
    pub daddr: IpAddr,
    pub dport: u16,
    pub syn_retransmits: u64,
    pub rst_received: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct RetransmitPath {
    pub pod: String,
    pub netns: u32,
    pub daddr: IpAddr,
    pub dport: u16,
    /// Retransmitted data segments sampled towards it.
    pub segs: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Tcp {
    /// Exact, from kernel counters; retransmits in segments.
    pub tcp: Vec<TcpCount>,
    /// From samples: destinations whose SYNs were retransmitted repeatedly.
    pub handshake_timeouts: Vec<HandshakeTimeout>,
    /// From samples: where retransmitted data segments went.
    pub retransmit_paths: Vec<RetransmitPath>,
    /// How long an open connection must have been quiet before its reset for the reset to
    /// count as after idle (`--idle-reset-min`).
    pub idle_reset_min_s: f64,
    /// From samples: resets on open connections per destination, with how long they had
    /// been quiet.
    pub idle_resets: Vec<IdleResets>,
    /// From samples: connects whose SYN-ACKs came back from another address, and were reset.
    pub lb_hairpins: Vec<Hairpin>,
}

/// (netns, pod, daddr, dport) of a sampled destination.
type Destination = (u32, String, IpAddr, u16);

#[derive(Default)]
pub struct Part {
    /// SYN retransmits and RSTs received, per destination.
    handshakes: HashMap<Destination, (u64, u64)>,
    /// Retransmitted data segments, per destination.
    retransmits: HashMap<Destination, u64>,
    patterns: Patterns,
    samples: u64,
}

impl section::Part for Part {
    type Section = Tcp;

    fn totals(s: &Snapshot, _: &Reasons, add: &mut Add) {
        super::timeline::totals(s, add);
    }

    fn frame(&mut self, frame: &Frame, _: &Timeline) {
        let Frame::Event(Event::Tcp(t)) = frame else { return };
        self.samples += 1;
        self.patterns.sample(t);
        let Some(daddr) = t.flow.daddr else { return };
        let key = (t.netns, t.pod.clone(), daddr, t.flow.dport.unwrap_or(0));
        match t.event {
            TcpEventKind::SynRetransmit => self.handshakes.entry(key).or_default().0 += 1,
            TcpEventKind::RstReceived => self.handshakes.entry(key).or_default().1 += 1,
            TcpEventKind::Retransmit => {
                *self.retransmits.entry(key).or_default() += u64::from(t.segs)
            }
            _ => {}
        }
    }

    fn samples(&self) -> u64 {
        self.samples
    }

    fn section(&self, c: &Context) -> Tcp {
        let mut tcp: Vec<TcpCount> = c
            .timeline
            .totals(Metric::TCP)
            .filter(|(s, ..)| c.keep(*s))
            .map(|(s, label, count)| {
                let (event, error) = match label.split_once(' ') {
                    Some((event, error)) => (event, Some(error.to_owned())),
                    None => (label, None),
                };
                TcpCount {
                    pod: c.name(Context::id_of(s)),
                    netns: c.inode(Context::id_of(s)),
                    event: event.to_owned(),
                    error,
                    count,
                }
            })
            .collect();
        tcp.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));

        let mut handshake_timeouts: Vec<HandshakeTimeout> = self
            .handshakes
            .iter()
            .filter(|((netns, ..), (syn, _))| *syn >= HANDSHAKE_TIMEOUT_MIN && c.in_scope(*netns))
            .map(|((netns, pod, daddr, dport), (syn, rst))| HandshakeTimeout {
                pod: pod.clone(),
                netns: *netns,
                daddr: *daddr,
                dport: *dport,
                syn_retransmits: *syn,
                rst_received: *rst,
            })
            .collect();
        handshake_timeouts.sort_by_key(|h| std::cmp::Reverse(h.syn_retransmits));
        handshake_timeouts.truncate(TOP);

        let mut retransmit_paths: Vec<RetransmitPath> = self
            .retransmits
            .iter()
            .filter(|((netns, ..), _)| c.in_scope(*netns))
            .map(|((netns, pod, daddr, dport), segs)| RetransmitPath {
                pod: pod.clone(),
                netns: *netns,
                daddr: *daddr,
                dport: *dport,
                segs: *segs,
            })
            .collect();
        retransmit_paths.sort_by_key(|r| std::cmp::Reverse(r.segs));
        retransmit_paths.truncate(TOP);

        let mut idle_resets = self.patterns.idle_resets(c.idle_reset_min, |n| c.in_scope(n));
        idle_resets.truncate(TOP);
        let mut lb_hairpins = self.patterns.hairpins(|n| c.in_scope(n));
        lb_hairpins.truncate(TOP);
        Tcp {
            tcp,
            handshake_timeouts,
            retransmit_paths,
            idle_reset_min_s: c.idle_reset_min.as_secs_f64(),
            idle_resets,
            lb_hairpins,
        }
    }
}

impl Section for Tcp {
    const TEXT: u8 = 30;
    const HTML: u8 = 30;

    fn text(&self, r: &Report) -> String {
        if !r.ran(Family::Tcp) {
            return String::new();
        }
        let mut s =
            "\nTCP retransmits (segments) and resets by pod (exact kernel counts)\n".to_owned();
        let rows =
            self.tcp.iter().map(|t| [t.pod.clone(), t.event.to_owned(), t.count.to_string()]);
        s += &table(["POD", "EVENT", "COUNT"], rows);
        s += "\nHandshake timeouts (SYNs retransmitted to one destination; from samples)\n";
        let rows = self.handshake_timeouts.iter().map(|h| {
            [
                h.pod.clone(),
                format!("{}:{}", h.daddr, h.dport),
                h.syn_retransmits.to_string(),
                h.rst_received.to_string(),
            ]
        });
        s += &table(["POD", "DESTINATION", "SYN RETRANSMITS", "RSTS RECEIVED"], rows);
        s += &format!(
            "\nResets of open connections by destination (from samples; after idle: quiet for {} s \
             or more since the last segment received)\n",
            self.idle_reset_min_s
        );
        s += &table(IDLE_HEAD, self.idle_resets.iter().map(IdleResets::cells));
        s += "\nLoad balancer hairpins (SYN-ACKs from another address than the SYNs went to, \
              reset; from samples)\n";
        s += &table(HAIRPIN_HEAD, self.lb_hairpins.iter().map(Hairpin::cells));
        s
    }

    fn html(&self, r: &Report) -> String {
        let mut s = "<h2>TCP retransmits per pod</h2>\n".to_owned();
        let tcp: Vec<&SeriesView> = html::series(r, Metric::TCP)
            .into_iter()
            .filter(|v| v.label.ends_with("retransmit"))
            .collect();
        let by_pod = html::group(&tcp, |v| v.pod.clone().unwrap_or_default());
        html::charts(&mut s, &r.timeline.t_s, &by_pod, "segments/s", "no retransmits");
        if self.idle_resets.iter().any(|i| i.after_idle > 0) {
            s += &format!(
                "<h2>Open connections reset after {} s or more quiet, per destination</h2>\n",
                self.idle_reset_min_s
            );
            s += &html_table(IDLE_HEAD, self.idle_resets.iter().map(IdleResets::cells));
        }
        if !self.lb_hairpins.is_empty() {
            s += "<h2>Load balancer hairpins: SYN-ACKs from another address than the SYNs went \
                  to</h2>\n";
            s += &html_table(HAIRPIN_HEAD, self.lb_hairpins.iter().map(Hairpin::cells));
        }
        s
    }

    fn pods(&self) -> Vec<&str> {
        let sampled = self.handshake_timeouts.iter().map(|h| h.pod.as_str());
        let idle = self.idle_resets.iter().map(|h| h.pod.as_str());
        sampled.chain(idle).chain(self.lb_hairpins.iter().map(|h| h.pod.as_str())).collect()
    }
}

fn html_table<const N: usize>(head: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let cells = |tag: &str, row: &[String]| -> String {
        row.iter().map(|c| format!("<{tag}>{}</{tag}>", html::esc(c))).collect()
    };
    let mut s = format!("<table><tr>{}</tr>", cells("th", &head.map(str::to_owned)));
    for row in rows {
        s += &format!("<tr>{}</tr>", cells("td", &row));
    }
    s + "</table>\n"
}
