//! Samples of every hook family, decoded from the one ring buffer into one timeline.

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

/// One sampled event; `type` names the family in JSON (docs/json.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Drop(DropSample),
    Tcp(TcpSample),
    Port(PortSample),
    /// Not a ring-buffer sample: a burst found in the bins (watch/report --events bursts).
    Burst(BurstEvent),
    /// A NET_RX softirq run squeezed on its budget.
    Squeeze(SqueezeSample),
    /// The kernel's "nf_conntrack: table full in netns N" console line.
    ConntrackTableFull(TableFullMessage),
    /// Not a ring-buffer sample: a pod's listen-queue counters grew since the last poll.
    ListenQueue(ListenQueueChange),
    /// Not a ring-buffer sample: a pod's conntrack counters grew since the last poll.
    Conntrack(ConntrackChange),
    /// Not a ring-buffer sample: a listener's accept-queue drops grew since the last poll.
    ListenOverflow(ListenOverflow),
}

impl Event {
    /// None for a short record or a kind this build does not know.
    pub fn decode(bytes: &[u8], names: &Names) -> Option<Self> {
        match wire::header(bytes)?.kind {
            kind::DROP => drops::decode::decode(bytes, names).map(Event::Drop),
            kind::TCP => tcp::decode::decode(bytes, names).map(Event::Tcp),
            kind::PORT => ports::decode::decode(bytes, names).map(Event::Port),
            kind::SQUEEZE => softnet::decode(bytes, names).map(Event::Squeeze),
            kind::CONSOLE => conntrack::decode(bytes, names).map(Event::ConntrackTableFull),
            _ => None,
        }
    }

    pub fn netns(&self) -> u32 {
        match self {
            Event::Drop(d) => d.netns,
            Event::Tcp(t) => t.netns,
            Event::Port(p) => p.netns,
            Event::Squeeze(_) => 0,
            Event::Burst(b) => b.netns,
            Event::ConntrackTableFull(m) => m.netns,
            Event::Conntrack(c) => c.netns,
            Event::ListenQueue(q) => q.netns,
            Event::ListenOverflow(l) => l.netns,
        }
    }

    pub fn set_pod(&mut self, pod: String) {
        match self {
            Event::Drop(d) => d.pod = pod,
            Event::Tcp(t) => t.pod = pod,
            Event::Port(p) => p.pod = pod,
            Event::Squeeze(_) => {}
            Event::Burst(b) => b.pod = pod,
            Event::ConntrackTableFull(m) => m.pod = pod,
            Event::Conntrack(c) => c.pod = pod,
            Event::ListenQueue(q) => q.pod = pod,
            Event::ListenOverflow(l) => l.pod = pod,
        }
    }

    /// One aligned line for `watch`.
    pub fn text(&self) -> String {
        let none = "-".to_owned();
        let (time, cpu, pod, what, flow, tail) = match self {
            Event::Drop(d) => (
                &d.time,
                Some(d.cpu),
                &d.pod,
                d.reason.as_str(),
                d.flow.text(),
                format!("at {}", d.location),
            ),
            Event::Tcp(t) => (
                &t.time,
                Some(t.cpu),
                &t.pod,
                t.event.as_str(),
                t.flow.text(),
                t.state.as_deref().map(|s| format!("state {s}")).unwrap_or_default(),
            ),
            Event::Port(p) => (
                &p.time,
                Some(p.cpu),
                &p.pod,
                p.errno.as_str(),
                format!("{} {}", p.op, p.flow.text()),
                port_context(p),
            ),
            Event::Burst(b) => (
                &b.time,
                Some(b.cpu),
                &b.pod,
                "BURST",
                format!("{} {} pkts in {:.0} us", b.interface, b.packets, b.duration_us),
                format!("peak {:.0} pps", b.peak_pps),
            ),
            Event::Squeeze(q) => (
                &q.time,
                Some(q.cpu),
                &none,
                "TIME_SQUEEZE",
                format!("NET_RX run of {} packets", q.packets),
                format!("{:.0} us, stopped with work left", q.duration_us),
            ),
            Event::ConntrackTableFull(m) => (
                &m.time,
                Some(m.cpu),
                &m.pod,
                "CONNTRACK_FULL",
                String::new(),
                format!("kernel: {}", m.message),
            ),
            Event::Conntrack(c) => (
                &c.time,
                None,
                &c.pod,
                "CONNTRACK",
                format!("table {}/{}", c.stats.count, c.stats.max),
                format!(
                    "+{} table-full drops, +{} insert_failed, +{} early_drop, +{} invalid",
                    c.stats.drop, c.stats.insert_failed, c.stats.early_drop, c.stats.invalid
                ),
            ),
            Event::ListenQueue(q) => (
                &q.time,
                None,
                &q.pod,
                "LISTEN_DROPS",
                String::new(),
                format!("+{} ListenOverflows, +{} ListenDrops", q.listen_overflows, q.listen_drops),
            ),
            Event::ListenOverflow(l) => (
                &l.time,
                None,
                &l.pod,
                "LISTEN_OVERFLOW",
                format!("tcp listen {}:{}", l.addr, l.port),
                format!("{} dropped, accept queue {}/{}", l.drops, l.queue, l.max_queue),
            ),
        };
        let time = time.get(11..26).unwrap_or(time);
        let cpu = cpu.map_or("-".to_owned(), |c| c.to_string());
        format!("{time} cpu{cpu:<2} {pod:<14} {what:<20} {flow:<46} {tail}")
    }
}

/// `by curl/4242, bound 0.0.0.0:0, port range 40000-40009, 10 in TIME_WAIT to it (+40 ms)`.
fn port_context(p: &PortSample) -> String {
    let mut s = format!("by {}/{}", p.comm, p.tgid);
    if let (Some(a), Some(port)) = (p.bound_addr, p.bound_port) {
        s += &format!(", bound {a}:{port}");
    }
    if let Some(r) = &p.ip_local_port_range {
        s += &format!(", port range {r}");
    }
    if let Some(n) = p.time_wait_to_destination {
        s += &format!(", {n} in TIME_WAIT to it");
        if let Some(ms) = p.time_wait_age_ms {
            s += &format!(" ({ms:+} ms)");
        }
    }
    s
}
