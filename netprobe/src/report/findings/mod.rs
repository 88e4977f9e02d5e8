//! Findings: what is wrong, for which pods, how sure, and which knob fixes it. Each rule reads
//! the report's exact counts and sets them next to the kernel counters that confirm them; no
//! rule fires without counts. Ids are stable and documented in docs/findings.md.

use super::{
    timeline::{Metric, Subject, Timeline},
    Report,
};
use crate::{clock::Clock, families::RULES};

/// A family's findings: each rule reads the report's exact counts and adds what it finds.
pub trait Rule: Sync {
    fn find(&self, c: &Context, out: &mut Vec<Finding>);
}

/// The stable finding ids (docs/findings.md), serialised as their snake_case names. The order
/// is the ranking among findings of one severity: root causes before the symptoms they
/// produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingId {
    EnaAllowanceExceeded,
    SoftnetBudgetExhausted,
    BacklogOverflow,
    Microburst,
    LinklocalDnsRate,
    ConntrackTableFull,
    ConntrackInsertFailed,
    ConntrackNearFull,
    ListenOverflow,
    EphemeralPortExhaustion,
    BindConflict,
    NetfilterPolicyDrop,
    PacketDrops,
    LbHairpin,
    SynRetransmits,
    IdleTimeoutReset,
    RetransmitStorm,
}

impl FindingId {
    #[cfg(test)]
    const ALL: [FindingId; 17] = [
        FindingId::EnaAllowanceExceeded,
        FindingId::SoftnetBudgetExhausted,
        FindingId::BacklogOverflow,
        FindingId::Microburst,
        FindingId::LinklocalDnsRate,
        FindingId::ConntrackTableFull,
        FindingId::ConntrackInsertFailed,
        FindingId::ConntrackNearFull,
        FindingId::ListenOverflow,
        FindingId::EphemeralPortExhaustion,
        FindingId::BindConflict,
        FindingId::NetfilterPolicyDrop,
        FindingId::PacketDrops,
        FindingId::LbHairpin,
        FindingId::SynRetransmits,
        FindingId::IdleTimeoutReset,
        FindingId::RetransmitStorm,
    ];

    /// The stable id, as in JSON and docs/findings.md.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingId::EnaAllowanceExceeded => "ena_allowance_exceeded",
            FindingId::SoftnetBudgetExhausted => "softnet_budget_exhausted",
            FindingId::BacklogOverflow => "backlog_overflow",
            FindingId::Microburst => "microburst",
            FindingId::LinklocalDnsRate => "linklocal_dns_rate",
            FindingId::ConntrackTableFull => "conntrack_table_full",
            FindingId::ConntrackInsertFailed => "conntrack_insert_failed",
            FindingId::ConntrackNearFull => "conntrack_near_full",
            FindingId::ListenOverflow => "listen_overflow",
            FindingId::EphemeralPortExhaustion => "ephemeral_port_exhaustion",
            FindingId::BindConflict => "bind_conflict",
            FindingId::NetfilterPolicyDrop => "netfilter_policy_drop",
            FindingId::PacketDrops => "packet_drops",
            FindingId::LbHairpin => "lb_hairpin",
            FindingId::SynRetransmits => "syn_retransmits",
            FindingId::IdleTimeoutReset => "idle_timeout_reset",
            FindingId::RetransmitStorm => "retransmit_storm",
        }
    }
}

impl std::fmt::Display for FindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Packets or connections lost.
    Critical,
    /// Degraded, or loss that may be intended (policy).
    Warning,
}

/// Serialized with its confidence (below), which follows from the evidence.
#[derive(Debug, Clone)]
pub struct Finding {
    pub id: FindingId,
    pub severity: Severity,
    /// One line: what is wrong, where.
    pub summary: String,
    /// Pods affected; empty for node-wide findings.
    pub pods: Vec<String>,
    /// The seconds the evidence grew in.
    pub window: Window,
    pub evidence: Vec<Evidence>,
    /// The facts the diagnosis rests on, besides counts; empty where counts alone decide.
    pub facts: Vec<Fact>,
    /// What to change, naming the knob.
    pub remedy: Vec<String>,
}

/// A fact a finding's diagnosis rests on, and where it came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fact {
    pub name: &'static str,
    /// None: it could not be read; the finding's confidence is then `incomplete`.
    pub value: Option<String>,
    pub source: FactSource,
    /// Polled facts: ms after the event they were read (negative: a read from before it).
    pub age_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FactSource {
    /// Read by the BPF program at the event itself.
    Kernel,
    /// Read from userspace after the event: it may have changed in between.
    Polled,
}

impl Fact {
    pub fn kernel(name: &'static str, value: Option<String>) -> Self {
        Self { name, value, source: FactSource::Kernel, age_ms: None }
    }

    pub fn polled(name: &'static str, value: Option<String>, age_ms: Option<i64>) -> Self {
        Self { name, value, source: FactSource::Polled, age_ms }
    }

    /// `ip_local_port_range 40000-40009 (kernel, at the event)`.
    pub fn text(&self) -> String {
        let value = self.value.as_deref().unwrap_or("missing");
        let from = match (self.source, self.age_ms) {
            (FactSource::Kernel, _) => "kernel, at the event".to_owned(),
            (FactSource::Polled, Some(ms)) => format!("polled {ms} ms after the event"),
            (FactSource::Polled, None) => "polled".to_owned(),
        };
        format!("{} {value} ({from})", self.name)
    }
}

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The kernel's own counter equals netprobe's count, or the finding rests on the kernel's
    /// counter itself.
    Confirmed,
    /// The kernel keeps a counter for it and that counter differs from netprobe's count: both
    /// numbers, and the likely reason, are in [`Finding::discrepancy`].
    KernelDiffers,
    /// The kernel keeps no counter for it (policy drops, failed calls, bursts): netprobe's
    /// exact counts and samples are the evidence.
    Measured,
    /// A fact the diagnosis rests on could not be read (its `facts` entry has no value): the
    /// diagnosis stands on the others and is the most likely one without it.
    Incomplete,
}

impl Finding {
    /// The evidence row that decides the confidence: the first with a kernel counter.
    fn checked(&self) -> Option<&Evidence> {
        self.evidence.iter().find(|e| e.kernel.is_some())
    }

    pub fn confidence(&self) -> Confidence {
        if self.facts.iter().any(|f| f.value.is_none()) {
            return Confidence::Incomplete;
        }
        match self.checked().map(|e| (e.netprobe, e.kernel)) {
            None => Confidence::Measured,
            Some((Some(n), Some(k))) if n != k => Confidence::KernelDiffers,
            Some(_) => Confidence::Confirmed,
        }
    }

    /// Where netprobe's count and the kernel's counter differ: both, and the likely reason.
    pub fn discrepancy(&self) -> Option<String> {
        let e = self.checked()?;
        let (n, k) = (e.netprobe?, e.kernel?);
        let counter = e.kernel_counter.as_deref().unwrap_or("the kernel's counter");
        let likely = if k > n {
            "events the kernel counted but no BPF program saw: invocations the kernel skipped \
             (health's skipped_invocations), or work done in a context where BPF programs do not \
             run (docs/findings.md), or the counter also counts what this hook does not"
        } else {
            "the kernel's counter counts only some of what netprobe saw (see the row), or \
             stopped counting (a netns gone before the last read)"
        };
        (n != k).then(|| {
            let d = n.abs_diff(k);
            let pct = 100.0 * d as f64 / n.max(k) as f64;
            format!("netprobe {n}, kernel {k} ({counter}): {d} apart ({pct:.2}%); likely {likely}")
        })
    }
}

impl serde::Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut f = s.serialize_struct("Finding", 10)?;
        f.serialize_field("id", &self.id)?;
        f.serialize_field("severity", &self.severity)?;
        f.serialize_field("confidence", &self.confidence())?;
        f.serialize_field("discrepancy", &self.discrepancy())?;
        f.serialize_field("summary", &self.summary)?;
        f.serialize_field("pods", &self.pods)?;
        f.serialize_field("window", &self.window)?;
        f.serialize_field("evidence", &self.evidence)?;
        f.serialize_field("facts", &self.facts)?;
        f.serialize_field("remedy", &self.remedy)?;
        f.end()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
    /// Seconds from the report's start.
    pub from_s: f64,
    pub to_s: f64,
}

/// One measurement, netprobe's next to the kernel's own where it keeps one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    pub what: String,
    pub netprobe: Option<u64>,
    pub kernel: Option<u64>,
    /// Which kernel counter `kernel` is.
    pub kernel_counter: Option<String>,
}

pub fn ev(what: impl Into<String>, netprobe: Option<u64>, kernel: Option<(u64, &str)>) -> Evidence {
    Evidence {
        what: what.into(),
        netprobe,
        kernel: kernel.map(|k| k.0),
        kernel_counter: kernel.map(|k| k.1.to_owned()),
    }
}

/// What every rule reads: the report, its timeline and clock, and which subjects it covers.
pub struct Context<'a> {
    pub r: &'a Report,
    pub tl: &'a Timeline,
    clock: &'a Clock,
    keep: &'a dyn Fn(Subject) -> bool,
}

impl Context<'_> {
    /// The window in which any series of `metric` passing `pick` grew.
    pub fn window(&self, metrics: &[Metric], pick: impl Fn(Subject, &str) -> bool) -> Window {
        let mut grew = vec![false; self.tl.ends_ns.len()];
        for m in metrics {
            let sums = self.tl.sum(*m, |s, l| (self.keep)(s) && pick(s, l));
            for (g, v) in grew.iter_mut().zip(sums) {
                *g |= v > 0;
            }
        }
        let first = grew.iter().position(|g| *g);
        let last = grew.iter().rposition(|g| *g);
        let (from_ns, to_ns) = match (first, last) {
            (Some(f), Some(l)) => {
                let from = if f == 0 { self.tl.start_ns } else { self.tl.ends_ns[f - 1] };
                (from, self.tl.ends_ns[l])
            }
            // Evidence from samples only: the whole report.
            _ => (self.tl.start_ns, self.tl.ends_ns.last().copied().unwrap_or(self.tl.start_ns)),
        };
        self.window_between(from_ns, to_ns)
    }

    /// The window between two CLOCK_MONOTONIC times.
    pub fn window_between(&self, from_ns: u64, to_ns: u64) -> Window {
        let secs = |ns: u64| ns.saturating_sub(self.tl.start_ns) as f64 / 1e9;
        Window {
            from: self.clock.wall(from_ns),
            to: self.clock.wall(to_ns),
            from_s: secs(from_ns),
            to_s: secs(to_ns),
        }
    }

    pub fn pod_window(&self, metrics: &[Metric], netns: u32) -> Window {
        self.window(metrics, |s, _| s == Subject::Netns(netns))
    }

    pub fn kernel(&self, netns: u32) -> super::PodKernel {
        self.r.kernel.iter().find(|k| k.netns == netns).cloned().unwrap_or_default()
    }
}

/// Every finding the report supports, most important first.
pub fn find(
    r: &Report,
    tl: &Timeline,
    clock: &Clock,
    keep: impl Fn(Subject) -> bool,
) -> Vec<Finding> {
    let c = Context { r, tl, clock, keep: &keep };
    let mut out = Vec::new();
    for rule in RULES {
        rule.find(&c, &mut out);
    }
    // Rules read the report, not each other's findings: their order is the sort's.
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| a.id.cmp(&b.id)));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        event::Event,
        families::{
            conntrack::stats::Stats,
            ports::{PortOp, PortSample},
            tcp::{TcpEventKind, TcpSample},
        },
        families::{drops::snapshot::DropRow, tcp::snapshot::TcpRow, Rows},
        family::Family,
        flow::FlowView,
        frames::{fixture, Frame, Frames, KernelCounters, Snapshot},
        kstat::NetnsCounters,
        report::{Builder, Report},
    };

    const POD: u32 = 4026532000;

    /// A report from two snapshots a second apart: `before` and `after` the pod's state.
    fn report(before: Snapshot, after: Snapshot) -> Report {
        report_with(before, after, &[])
    }

    /// [`report`] with sampled events between the snapshots.
    fn report_with(before: Snapshot, after: Snapshot, events: &[Event]) -> Report {
        let mut b = Builder::default();
        b.frame(&Frame::Header(fixture::header(&[Family::Tcp, Family::Conntrack])));
        b.frame(&Frame::Pods(BTreeMap::from([(POD, crate::pods::tests::meta("web-1"))])));
        b.frame(&Frame::Snapshot(Snapshot { t_ns: 1_000_000_000, ..before }));
        for e in events {
            b.frame(&Frame::Event(e.clone()));
        }
        b.frame(&Frame::Snapshot(Snapshot { t_ns: 2_000_000_000, ..after }));
        b.finish(None).unwrap()
    }

    fn kernel(c: NetnsCounters) -> KernelCounters {
        KernelCounters { netns: BTreeMap::from([(POD, c)]), ..Default::default() }
    }

    fn ids(r: &Report) -> Vec<FindingId> {
        r.findings.iter().map(|f| f.id).collect()
    }

    #[test]
    fn every_id_is_documented_and_serialises_as_its_name() {
        let doc = include_str!("../../../../docs/findings.md");
        for id in FindingId::ALL {
            assert_eq!(serde_json::to_value(id).unwrap(), id.as_str());
            assert!(doc.contains(&format!("`{id}`")), "docs/findings.md does not document {id}");
        }
    }

    #[test]
    fn nothing_grew_nothing_found() {
        let busy = NetnsCounters { tcp_out_segs: 5000, tcp_retrans_segs: 40, ..Default::default() };
        let s = Snapshot { kernel: kernel(busy), ..Default::default() };
        assert_eq!(ids(&report(s.clone(), s)), Vec::<FindingId>::new());
    }

    #[test]
    fn insert_races_are_their_own_finding_with_the_kernel_count() {
        let ct = |insert_failed| NetnsCounters {
            conntrack: Some(Stats { insert_failed, count: 10, max: 1000, ..Default::default() }),
            ..Default::default()
        };
        let r = report(
            Snapshot { kernel: kernel(ct(3)), ..Default::default() },
            Snapshot { kernel: kernel(ct(15)), ..Default::default() },
        );
        assert_eq!(ids(&r), [FindingId::ConntrackInsertFailed]);
        let f = &r.findings[0];
        // netprobe saw no verdict drops here: the kernel's 12 are not confirmed by them.
        assert_eq!(f.confidence(), Confidence::KernelDiffers);
        let why = f.discrepancy().unwrap();
        assert!(
            why.starts_with("netprobe 0, kernel 12 (nf_conntrack stat insert_failed)"),
            "{why}"
        );
        assert_eq!(f.pods, ["web-1"]);
        assert_eq!(f.evidence[0].kernel, Some(12));
        assert_eq!(f.window.from_s, 0.0);
        assert_eq!(f.window.to_s, 1.0);
    }

    #[test]
    fn a_nearly_full_table_is_a_warning_before_it_drops() {
        let ct = |count| NetnsCounters {
            conntrack: Some(Stats { count, max: 1000, ..Default::default() }),
            ..Default::default()
        };
        let s = |c| Snapshot { kernel: kernel(ct(c)), ..Default::default() };
        assert_eq!(ids(&report(s(10), s(700))), Vec::<FindingId>::new());
        let r = report(s(10), s(800));
        assert_eq!(ids(&r), [FindingId::ConntrackNearFull]);
        assert_eq!(r.findings[0].evidence[0].kernel, Some(800));
    }

    #[test]
    fn causes_rank_before_their_symptoms() {
        let k = |overflows, syn| NetnsCounters {
            listen_overflows: overflows,
            listen_drops: overflows,
            tcp_syn_retrans: syn,
            ..Default::default()
        };
        let syn = |count| {
            vec![TcpRow { netns: POD, event: TcpEventKind::SynRetransmit, error: None, count }]
        };
        let r = report(
            Snapshot { kernel: kernel(k(0, 0)), ..Default::default() },
            Snapshot {
                kernel: kernel(k(30, 30)),
                rows: Rows { tcp: syn(30), ..Default::default() },
                ..Default::default()
            },
        );
        assert_eq!(ids(&r), [FindingId::ListenOverflow, FindingId::SynRetransmits]);
        assert_eq!(r.findings[1].evidence[0].netprobe, Some(30));
        assert_eq!(r.findings[1].evidence[0].kernel, Some(30));
        assert_eq!(r.findings[1].confidence(), Confidence::Confirmed);
    }

    #[test]
    fn a_few_retransmits_of_much_traffic_are_not_a_storm() {
        let k = |out, re| NetnsCounters {
            tcp_out_segs: out,
            tcp_retrans_segs: re,
            ..Default::default()
        };
        let re = |count| {
            vec![TcpRow { netns: POD, event: TcpEventKind::Retransmit, error: None, count }]
        };
        let quiet = report(
            Snapshot { kernel: kernel(k(0, 0)), ..Default::default() },
            Snapshot {
                kernel: kernel(k(100_000, 20)),
                rows: Rows { tcp: re(20), ..Default::default() },
                ..Default::default()
            },
        );
        assert_eq!(ids(&quiet), Vec::<FindingId>::new());
        let storm = report(
            Snapshot { kernel: kernel(k(0, 0)), ..Default::default() },
            Snapshot {
                kernel: kernel(k(1000, 80)),
                rows: Rows { tcp: re(80), ..Default::default() },
                ..Default::default()
            },
        );
        assert_eq!(ids(&storm), [FindingId::RetransmitStorm]);
        assert_eq!(storm.findings[0].severity, Severity::Critical);
    }

    /// Drops in the fixture's reasons: 2 NOT_SPECIFIED, 3 NO_SOCKET.
    fn drops(rows: &[(u32, &str, u64)]) -> Snapshot {
        let drops = rows
            .iter()
            .map(|(reason, at, count)| DropRow {
                netns: POD,
                reason: *reason,
                location: (*at).into(),
                count: *count,
            })
            .collect();
        Snapshot { rows: Rows { drops, ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn background_drops_are_counted_but_never_a_finding() {
        let background =
            [(2, "ip6_mc_input+0x1a5", 600), (2, "__udp4_lib_mcast_deliver+0x2d", 300)];
        let r = report(drops(&[]), drops(&background));
        assert_eq!(ids(&r), Vec::<FindingId>::new());
        assert_eq!(
            r.sections.drops.drops.iter().map(|d| d.count).sum::<u64>(),
            900,
            "still in the tables"
        );

        let mut storm = background.to_vec();
        storm.push((3, "__udp4_lib_rcv+0x4bc", 400));
        let r = report(drops(&[]), drops(&storm));
        assert_eq!(ids(&r), [FindingId::PacketDrops]);
        assert!(r.findings[0].summary.contains("400 packets dropped"), "{}", r.findings[0].summary);
    }

    #[test]
    fn a_few_drops_of_heavy_traffic_are_not_abnormal() {
        let s = |packets, n| Snapshot {
            kernel: kernel(NetnsCounters { ip_packets: packets, ..Default::default() }),
            ..drops(&[(3, "__udp4_lib_rcv+0x4bc", n)])
        };
        assert_eq!(ids(&report(s(0, 0), s(100_000, 500))), Vec::<FindingId>::new());
        assert_eq!(ids(&report(s(0, 0), s(100_000, 1000))), [FindingId::PacketDrops]);
    }

    #[test]
    fn only_a_kernel_counter_equal_to_netprobes_count_confirms() {
        let s = |no_ports, n| Snapshot {
            kernel: kernel(NetnsCounters { udp_no_ports: no_ports, ..Default::default() }),
            ..drops(&[(3, "__udp4_lib_rcv+0x4bc", n)])
        };
        let same = report(s(0, 0), s(4000, 4000));
        assert_eq!(same.findings[0].confidence(), Confidence::Confirmed);
        assert_eq!(same.findings[0].discrepancy(), None);
        // The kernel counted 12 more (0.3%, well within any tolerance): not confirmed.
        let more = report(s(0, 0), s(4012, 4000));
        let f = &more.findings[0];
        assert_eq!(f.confidence(), Confidence::KernelDiffers);
        let why = f.discrepancy().unwrap();
        assert!(
            why.starts_with("netprobe 4000, kernel 4012 (Udp(6) NoPorts + Tcp OutRsts): 12 apart"),
            "{why}"
        );
        assert!(why.contains("no BPF program saw"), "{why}");
        let json = serde_json::to_value(f).unwrap();
        assert_eq!(
            (&json["confidence"], &json["discrepancy"]),
            (&"kernel_differs".into(), &why.clone().into())
        );
        assert!(crate::report::text::text(&more).contains(&format!("kernel differs: {why}")));
    }

    #[test]
    fn background_does_not_lift_a_trickle_over_the_floor() {
        let trickle = |n| [(2, "ip6_mc_input+0x1a5", 600), (2, "ip6_rcv_core+0x80", n)];
        assert_eq!(ids(&report(drops(&[]), drops(&trickle(9)))), Vec::<FindingId>::new());
        let r = report(drops(&[]), drops(&trickle(10)));
        assert_eq!(ids(&r), [FindingId::PacketDrops]);
        let at: Vec<&str> = r.findings[0].evidence.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(at, ["dropped, reason NOT_SPECIFIED", "at ip6_rcv_core+0x80"]);
    }

    /// A connect() EADDRNOTAVAIL to 10.0.0.9:80 from a socket bound to `bound` (None: the
    /// kernel could not read it), with the range the kernel had and the polled TIME_WAIT.
    fn eaddrnotavail(bound: Option<u16>, range: Option<&str>, time_wait: Option<u32>) -> Event {
        Event::Port(PortSample {
            time: String::new(),
            ts_ns: 1_500_000_000,
            cpu: 0,
            pod: "web-1".into(),
            netns: POD,
            op: PortOp::Connect,
            errno: "EADDRNOTAVAIL".into(),
            errno_code: 99,
            pid: 7,
            tgid: 7,
            comm: "curl".into(),
            flow: FlowView {
                daddr: Some("10.0.0.9".parse().unwrap()),
                dport: Some(80),
                ..Default::default()
            },
            ip_local_port_range: range.map(str::to_owned),
            bound_addr: bound.map(|_| "0.0.0.0".parse().unwrap()),
            bound_port: bound,
            held_by: None,
            time_wait_to_destination: time_wait,
            time_wait_age_ms: time_wait.map(|_| 40),
        })
    }

    fn port_errors(n: u64) -> Snapshot {
        let ports = vec![crate::families::ports::snapshot::PortRow {
            netns: POD,
            op: PortOp::Connect,
            errno: "EADDRNOTAVAIL".into(),
            count: n,
        }];
        Snapshot { rows: Rows { ports, ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn no_free_port_at_the_error_is_exhaustion_whatever_time_wait_says() {
        // A few TIME_WAIT of a wide range: the ports are held by live connections, but the
        // kernel still found none free for a socket with no port of its own.
        let e = eaddrnotavail(Some(0), Some("40000-40009"), Some(2));
        let r = report_with(port_errors(0), port_errors(30), &[e]);
        assert_eq!(ids(&r), [FindingId::EphemeralPortExhaustion]);
        let f = &r.findings[0];
        assert_eq!(f.confidence(), Confidence::Measured);
        let facts: Vec<String> = f.facts.iter().map(Fact::text).collect();
        assert_eq!(
            facts,
            [
                "ip_local_port_range 40000-40009 (kernel, at the event)",
                "bound_address 0.0.0.0:0 (kernel, at the event)",
                "time_wait_to_destination 2 (polled 40 ms after the event)",
            ]
        );
        assert!(f.remedy.iter().any(|r| r.contains("now 40000-40009")), "{:?}", f.remedy);
    }

    #[test]
    fn a_missing_fact_lowers_confidence_and_keeps_the_diagnosis() {
        // The pod's netns was gone before TIME_WAIT could be polled.
        let gone = eaddrnotavail(Some(0), Some("40000-40009"), None);
        let r = report_with(port_errors(0), port_errors(30), &[gone]);
        assert_eq!(ids(&r), [FindingId::EphemeralPortExhaustion]);
        assert_eq!(r.findings[0].confidence(), Confidence::Incomplete);
        // Nothing read at all, not even the socket: still the common cause.
        let blind = eaddrnotavail(None, None, None);
        let r = report_with(port_errors(0), port_errors(30), &[blind]);
        assert_eq!(ids(&r), [FindingId::EphemeralPortExhaustion]);
        assert_eq!(r.findings[0].confidence(), Confidence::Incomplete);
    }

    #[test]
    fn a_socket_bound_to_a_fixed_port_is_a_bind_conflict() {
        let e = eaddrnotavail(Some(45000), Some("32768-60999"), Some(0));
        let r = report_with(port_errors(0), port_errors(1), &[e]);
        assert_eq!(ids(&r), [FindingId::BindConflict]);
        assert_eq!(r.findings[0].confidence(), Confidence::Measured);
    }

    /// A TCP sample of the fixture's pod, `local` to `remote`.
    fn tcp(event: TcpEventKind, state: Option<&str>, local: &str, remote: &str) -> TcpSample {
        let (l, r): (std::net::SocketAddr, std::net::SocketAddr) =
            (local.parse().unwrap(), remote.parse().unwrap());
        TcpSample {
            time: String::new(),
            ts_ns: 1_500_000_000,
            cpu: 0,
            pod: "web-1".into(),
            netns: POD,
            event,
            state: state.map(str::to_owned),
            segs: 1,
            error: None,
            flow: FlowView {
                saddr: Some(l.ip()),
                daddr: Some(r.ip()),
                sport: Some(l.port()),
                dport: Some(r.port()),
                ..FlowView::default()
            },
            last_recv_ms: None,
            last_send_ms: None,
            answered: None,
        }
    }

    #[test]
    fn synacks_from_the_backend_are_a_hairpin_before_the_syn_retransmits() {
        let mut events = Vec::new();
        for _ in 0..2 {
            let syn =
                tcp(TcpEventKind::SynRetransmit, Some("SYN_SENT"), "10.0.0.1:40000", "10.2.0.1:80");
            events.push(Event::Tcp(syn));
        }
        for _ in 0..3 {
            let mut rst = tcp(TcpEventKind::RstSent, None, "10.0.0.1:40000", "10.0.0.2:8080");
            rst.answered = Some("SYN|ACK".into());
            events.push(Event::Tcp(rst));
        }
        let k = |syn, rsts| NetnsCounters {
            tcp_syn_retrans: syn,
            tcp_out_rsts: rsts,
            ..Default::default()
        };
        let rows = |syn, rst| Rows {
            tcp: vec![
                TcpRow { netns: POD, event: TcpEventKind::SynRetransmit, error: None, count: syn },
                TcpRow { netns: POD, event: TcpEventKind::RstSent, error: None, count: rst },
            ],
            ..Default::default()
        };
        let r = report_with(
            Snapshot { kernel: kernel(k(0, 0)), rows: rows(0, 0), ..Default::default() },
            Snapshot { kernel: kernel(k(2, 3)), rows: rows(2, 3), ..Default::default() },
            &events,
        );
        assert_eq!(ids(&r), [FindingId::LbHairpin, FindingId::SynRetransmits]);
        let f = &r.findings[0];
        assert_eq!(f.confidence(), Confidence::Confirmed);
        assert_eq!((f.evidence[0].netprobe, f.evidence[1].netprobe), (Some(2), Some(3)));
        assert!(f.summary.contains("10.2.0.1:80") && f.summary.contains("10.0.0.2:8080"), "{f:?}");
        let text = r.render(crate::cli::ReportFormat::Text).unwrap();
        assert!(
            text.contains("web-1 10.2.0.1:80  10.0.0.2:8080     1               2              3"),
            "{text}"
        );
        let html = r.render(crate::cli::ReportFormat::Html).unwrap();
        assert!(html.contains("<td>10.0.0.2:8080</td>"), "{html}");
    }

    #[test]
    fn several_resets_after_the_threshold_of_quiet_are_an_idle_timeout() {
        let reset = |quiet| {
            let mut s = tcp(
                TcpEventKind::RstReceived,
                Some("ESTABLISHED"),
                "10.0.0.1:40000",
                "10.9.0.1:443",
            );
            s.last_recv_ms = Some(quiet);
            Event::Tcp(s)
        };
        let k = |n| NetnsCounters { tcp_estab_resets: n, ..Default::default() };
        let run = |quiet: &[u32]| {
            let events: Vec<Event> = quiet.iter().map(|q| reset(*q)).collect();
            let n = quiet.len() as u64;
            report_with(
                Snapshot { kernel: kernel(k(0)), ..Default::default() },
                Snapshot { kernel: kernel(k(n)), ..Default::default() },
                &events,
            )
        };
        // Two after long quiet, one after a short one: not yet several.
        assert_eq!(ids(&run(&[351_000, 352_000, 1_000])), Vec::<FindingId>::new());
        let r = run(&[351_000, 352_000, 360_000, 1_000]);
        assert_eq!(ids(&r), [FindingId::IdleTimeoutReset]);
        let f = &r.findings[0];
        assert_eq!(f.confidence(), Confidence::Confirmed);
        assert_eq!((f.evidence[0].netprobe, f.evidence[0].kernel), (Some(4), Some(4)));
        assert_eq!(f.evidence[1].netprobe, Some(3));
        assert!(f.summary.contains("351.0-360.0 s quiet"), "{}", f.summary);
        assert!(f.remedy[0].contains("below 351.0 s"), "{:?}", f.remedy);
    }
}
