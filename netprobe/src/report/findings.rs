//! Findings: what is wrong, for which pods, how sure, and which knob fixes it. Each rule reads
//! the report's exact counts and sets them next to the kernel counters that confirm them; no
//! rule fires without counts. Ids are stable and documented in docs/findings.md.

use super::{
    timeline::{Metric, Subject, Timeline},
    PortErrorSite, Report,
};
use crate::{clock::Clock, families::conntrack::UTILISATION_WARN};

/// Root causes before the symptoms they produce: ties in severity rank by this.
pub const IDS: &[&str] = &[
    SOFTNET_BUDGET_EXHAUSTED,
    BACKLOG_OVERFLOW,
    MICROBURST,
    CONNTRACK_TABLE_FULL,
    CONNTRACK_INSERT_FAILED,
    CONNTRACK_NEAR_FULL,
    LISTEN_OVERFLOW,
    EPHEMERAL_PORT_EXHAUSTION,
    BIND_CONFLICT,
    NETFILTER_POLICY_DROP,
    PACKET_DROPS,
    SYN_RETRANSMITS,
    RETRANSMIT_STORM,
];
pub const SOFTNET_BUDGET_EXHAUSTED: &str = "softnet_budget_exhausted";
pub const BACKLOG_OVERFLOW: &str = "backlog_overflow";
pub const MICROBURST: &str = "microburst";
pub const CONNTRACK_TABLE_FULL: &str = "conntrack_table_full";
pub const CONNTRACK_INSERT_FAILED: &str = "conntrack_insert_failed";
pub const CONNTRACK_NEAR_FULL: &str = "conntrack_near_full";
pub const NETFILTER_POLICY_DROP: &str = "netfilter_policy_drop";
pub const EPHEMERAL_PORT_EXHAUSTION: &str = "ephemeral_port_exhaustion";
pub const BIND_CONFLICT: &str = "bind_conflict";
pub const LISTEN_OVERFLOW: &str = "listen_overflow";
pub const SYN_RETRANSMITS: &str = "syn_retransmits";
pub const RETRANSMIT_STORM: &str = "retransmit_storm";
pub const PACKET_DROPS: &str = "packet_drops";

/// Squeezes below this over a report are the normal life of a busy CPU.
const SQUEEZES_MIN: u64 = 10;
/// Drops of one reason in one pod per second, outside the sites other findings explain, below
/// which they are background (stray multicast, a late packet to a closed socket).
const DROPS_PER_S_MIN: u64 = 10;
/// Retransmitted data segments per pod from which on loss is worth a finding, and the share
/// of sent segments that makes it a warning, then critical.
const RETRANS_MIN: u64 = 10;
const RETRANS_WARN: f64 = 0.01;
const RETRANS_CRITICAL: f64 = 0.05;
/// SYN retransmits in one pod that make a handshake-timeout finding.
const SYN_RETRANS_MIN: u64 = 2;
/// A connect() EADDRNOTAVAIL is port exhaustion when TIME_WAIT to the destination holds at
/// least this share of the port range; below it the range was not used up, so a bound
/// source's 4-tuple collided.
const EXHAUSTED_SHARE: f64 = 0.5;

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
    pub id: &'static str,
    pub severity: Severity,
    /// One line: what is wrong, where.
    pub summary: String,
    /// Pods affected; empty for node-wide findings.
    pub pods: Vec<String>,
    /// The seconds the evidence grew in.
    pub window: Window,
    pub evidence: Vec<Evidence>,
    /// What to change, naming the knob.
    pub remedy: Vec<String>,
}

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// The kernel's own counter agrees with netprobe's count (within 10%), or the finding
    /// rests on the kernel's counter itself.
    Confirmed,
    /// The kernel keeps no counter for it (policy drops, failed calls, bursts), or its counter
    /// disagrees: netprobe's exact counts and samples are the evidence.
    Measured,
}

impl Finding {
    pub fn confidence(&self) -> Confidence {
        let counted = self.evidence.iter().find(|e| e.kernel.is_some());
        let agrees = |e: &Evidence| match (e.netprobe, e.kernel) {
            (Some(n), Some(k)) => n.abs_diff(k) * 10 <= n.max(k),
            (None, Some(_)) => true,
            _ => false,
        };
        match counted {
            Some(e) if agrees(e) => Confidence::Confirmed,
            _ => Confidence::Measured,
        }
    }
}

impl serde::Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut f = s.serialize_struct("Finding", 8)?;
        f.serialize_field("id", self.id)?;
        f.serialize_field("severity", &self.severity)?;
        f.serialize_field("confidence", &self.confidence())?;
        f.serialize_field("summary", &self.summary)?;
        f.serialize_field("pods", &self.pods)?;
        f.serialize_field("window", &self.window)?;
        f.serialize_field("evidence", &self.evidence)?;
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

fn ev(what: impl Into<String>, netprobe: Option<u64>, kernel: Option<(u64, &str)>) -> Evidence {
    Evidence {
        what: what.into(),
        netprobe,
        kernel: kernel.map(|k| k.0),
        kernel_counter: kernel.map(|k| k.1.to_owned()),
    }
}

struct Ctx<'a, K> {
    r: &'a Report,
    tl: &'a Timeline,
    clock: &'a Clock,
    keep: K,
}

impl<K: Fn(Subject) -> bool> Ctx<'_, K> {
    /// The window in which any series of `metric` passing `pick` grew.
    fn window(&self, metrics: &[Metric], pick: impl Fn(Subject, &str) -> bool) -> Window {
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
        let secs = |ns: u64| ns.saturating_sub(self.tl.start_ns) as f64 / 1e9;
        Window {
            from: self.clock.wall(from_ns),
            to: self.clock.wall(to_ns),
            from_s: secs(from_ns),
            to_s: secs(to_ns),
        }
    }

    fn pod_window(&self, metrics: &[Metric], netns: u32) -> Window {
        self.window(metrics, |s, _| s == Subject::Netns(netns))
    }

    fn kernel(&self, netns: u32) -> super::PodKernel {
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
    let c = Ctx { r, tl, clock, keep };
    let mut out = Vec::new();
    softnet(&c, &mut out);
    microbursts(&c, &mut out);
    conntrack(&c, &mut out);
    listen(&c, &mut out);
    ports(&c, &mut out);
    drops(&c, &mut out);
    tcp(&c, &mut out);
    let rank = |f: &Finding| IDS.iter().position(|i| *i == f.id).unwrap_or(IDS.len());
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| rank(a).cmp(&rank(b))));
    out
}

fn softnet<K: Fn(Subject) -> bool>(c: &Ctx<K>, out: &mut Vec<Finding>) {
    let Some(sn) = &c.r.softnet else { return };
    let knob = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
    let backlog: u64 = sn.backlog_drops.iter().map(|d| d.count).sum();
    let kernel_cpu = |cpu: u32| sn.kernel_cpus.iter().find(|k| k.cpu == cpu);
    let backlog_pods: Vec<String> = sn.backlog_drops.iter().map(|d| d.pod.clone()).collect();
    let squeezed: Vec<_> = sn.cpus.iter().filter(|c| c.squeezes > 0).collect();
    let squeezes: u64 = squeezed.iter().map(|c| c.squeezes).sum();
    if squeezes >= SQUEEZES_MIN {
        let mut evidence: Vec<Evidence> = squeezed
            .iter()
            .map(|cpu| {
                ev(
                    format!("CPU {}: NET_RX runs cut short with packets left", cpu.cpu),
                    Some(cpu.squeezes),
                    kernel_cpu(cpu.cpu).map(|k| (k.time_squeeze, "softnet_stat time_squeeze")),
                )
            })
            .collect();
        if sn.max_squeezed_packets > 0 {
            evidence.push(ev(
                format!(
                    "largest squeezed run: {} packets, longest {:.0} us",
                    sn.max_squeezed_packets, sn.max_squeezed_us
                ),
                None,
                None,
            ));
        }
        if backlog > 0 {
            evidence.push(ev("packets dropped on a full backlog meanwhile", Some(backlog), None));
        }
        let cpus: Vec<String> = squeezed.iter().map(|c| c.cpu.to_string()).collect();
        out.push(Finding {
            id: SOFTNET_BUDGET_EXHAUSTED,
            severity: if backlog > 0 { Severity::Critical } else { Severity::Warning },
            summary: format!(
                "CPU {} ran out of softirq budget {squeezes} times (net.core.netdev_budget {}): \
                 received packets wait for the next run",
                cpus.join(", "),
                knob(sn.knobs.netdev_budget)
            ),
            pods: backlog_pods.clone(),
            window: c.window(&[Metric::Squeezes], |_, _| true),
            evidence,
            remedy: vec![
                format!(
                    "raise net.core.netdev_budget (now {}; 600 or more) and \
                     net.core.netdev_budget_usecs (now {}; e.g. 4000-8000) so one NET_RX run \
                     can clear the queue",
                    knob(sn.knobs.netdev_budget),
                    knob(sn.knobs.netdev_budget_usecs)
                ),
                "spread receive work over more CPUs: RSS queues, or RPS \
                 (/sys/class/net/<if>/queues/rx-*/rps_cpus)"
                    .into(),
            ],
        });
    }
    if backlog > 0 {
        let dropped: u64 = sn.kernel_cpus.iter().map(|k| k.dropped).sum();
        let mut evidence = vec![ev(
            "packets dropped because a CPU's input backlog was full",
            Some(backlog),
            Some((dropped, "softnet_stat dropped, all CPUs")),
        )];
        evidence.extend(sn.backlog_drops.iter().map(|d| {
            ev(
                format!("{}: dropped at enqueue_to_backlog ({})", d.pod, d.reason),
                Some(d.count),
                None,
            )
        }));
        out.push(Finding {
            id: BACKLOG_OVERFLOW,
            severity: Severity::Critical,
            summary: format!(
                "{backlog} packets dropped on a full CPU backlog (net.core.netdev_max_backlog {})",
                knob(sn.knobs.netdev_max_backlog)
            ),
            pods: backlog_pods,
            window: c.window(&[Metric::BacklogDrops], |_, _| true),
            evidence,
            remedy: vec![format!(
                "raise net.core.netdev_max_backlog (now {}; e.g. 2-4x, 2000-5000), and if \
                 softnet_budget_exhausted is also found, the budget first: a backlog that is \
                 drained faster needs less depth",
                knob(sn.knobs.netdev_max_backlog)
            )],
        });
    }
}

fn microbursts<K: Fn(Subject) -> bool>(c: &Ctx<K>, out: &mut Vec<Finding>) {
    if c.r.burst_count == 0 {
        return;
    }
    let mut pods: Vec<String> = c.r.bursts.iter().map(|b| b.pod.clone()).collect();
    pods.sort();
    pods.dedup();
    let loss = c.r.softnet.as_ref().is_some_and(|s| !s.backlog_drops.is_empty());
    let mut evidence: Vec<Evidence> =
        c.r.bursts
            .iter()
            .take(3)
            .map(|b| {
                ev(
                    format!(
                        "{} {}: {} packets in {:.0} us, peak {:.0} pps, CPU {}",
                        b.pod, b.interface, b.packets, b.duration_us, b.peak_pps, b.cpu
                    ),
                    Some(b.packets),
                    None,
                )
            })
            .collect();
    evidence.insert(0, ev("bursts found", Some(c.r.burst_count), None));
    let netns: Vec<u32> = c.r.bursts.iter().map(|b| b.netns).collect();
    out.push(Finding {
        id: MICROBURST,
        severity: if loss { Severity::Critical } else { Severity::Warning },
        summary: format!(
            "{} microbursts: sub-millisecond packet rates far above the average, invisible to \
             15 s scrapes",
            c.r.burst_count
        ),
        pods,
        window: c
            .window(&[Metric::Bursts], |s, _| matches!(s, Subject::Netns(n) if netns.contains(&n))),
        evidence,
        remedy: vec![
            "absorb bursts: net.core.netdev_max_backlog and the NIC/veth queue lengths; give \
             receive processing room (net.core.netdev_budget, RPS)"
                .into(),
            "smooth the sender: pacing (fq qdisc), smaller batches, or spread clients' timers"
                .into(),
        ],
    });
}

fn conntrack<K: Fn(Subject) -> bool>(c: &Ctx<K>, out: &mut Vec<Finding>) {
    for row in &c.r.conntrack {
        let fill = format!("{}/{}", row.peak_count, row.max);
        if row.table_full_drops > 0 {
            out.push(Finding {
                id: CONNTRACK_TABLE_FULL,
                severity: Severity::Critical,
                summary: format!(
                    "{}: conntrack table full ({fill} entries at peak): {} new connections \
                     dropped",
                    row.pod, row.table_full_drops
                ),
                pods: vec![row.pod.clone()],
                window: c.pod_window(&[Metric::KernelConntrackDrop], row.netns),
                evidence: vec![
                    ev(
                        "packets dropped by a netfilter verdict (nf_hook_slow)",
                        Some(row.verdict_drops),
                        Some((row.table_full_drops, "nf_conntrack stat drop")),
                    ),
                    ev(format!("table fill at peak: {fill}"), Some(row.peak_count), None),
                    ev(
                        "kernel 'table full, dropping packet' messages",
                        Some(row.table_full_messages),
                        None,
                    ),
                ],
                remedy: vec![
                    format!(
                        "raise net.netfilter.nf_conntrack_max (now {}) to well above the peak, \
                         with net.netfilter.nf_conntrack_buckets (the hash size) about max/4",
                        row.max
                    ),
                    "shorten how long closed connections hold entries: \
                     net.netfilter.nf_conntrack_tcp_timeout_time_wait (default 120 s)"
                        .into(),
                    "fewer new connections: connection pooling / keep-alive; or exempt \
                     high-churn traffic from tracking (notrack)"
                        .into(),
                ],
            });
        }
        let near = row.peak_count as f64 >= row.max as f64 * UTILISATION_WARN;
        if row.table_full_drops == 0 && row.max > 0 && near {
            out.push(Finding {
                id: CONNTRACK_NEAR_FULL,
                severity: Severity::Warning,
                summary: format!(
                    "{}: conntrack table {fill} at peak ({:.0}%): new connections will be \
                     dropped when it fills",
                    row.pod,
                    100.0 * row.peak_count as f64 / row.max as f64
                ),
                pods: vec![row.pod.clone()],
                window: c.pod_window(&[], row.netns),
                evidence: vec![ev(
                    format!("table entries at peak, of {}", row.max),
                    None,
                    Some((row.peak_count, "nf_conntrack_count")),
                )],
                remedy: vec![format!(
                    "raise net.netfilter.nf_conntrack_max (now {}) before it fills, with \
                     net.netfilter.nf_conntrack_buckets about max/4",
                    row.max
                )],
            });
        }
        if row.insert_failed > 0 {
            out.push(Finding {
                id: CONNTRACK_INSERT_FAILED,
                severity: Severity::Critical,
                summary: format!(
                    "{}: {} conntrack inserts lost a race and their packets were dropped",
                    row.pod, row.insert_failed
                ),
                pods: vec![row.pod.clone()],
                window: c.pod_window(&[Metric::KernelConntrackInsertFailed], row.netns),
                evidence: vec![ev(
                    "packets dropped by a netfilter verdict (nf_hook_slow)",
                    Some(row.verdict_drops),
                    Some((row.insert_failed, "nf_conntrack stat insert_failed")),
                )],
                remedy: vec![
                    "the classic cause is parallel UDP queries from one socket through DNAT \
                     (A and AAAA DNS lookups): `options single-request-reopen` in \
                     resolv.conf, NodeLocal DNSCache, or DNS over TCP"
                        .into(),
                ],
            });
        }
        // Rule drops are policy; verdict drops beyond conntrack's own are other hooks' rules
        // (iptables, ebtables).
        let other_verdicts =
            row.verdict_drops.saturating_sub(row.table_full_drops + row.insert_failed);
        let policy = row.rule_drops + other_verdicts;
        if policy > 0 {
            out.push(Finding {
                id: NETFILTER_POLICY_DROP,
                severity: Severity::Warning,
                summary: format!(
                    "{}: {policy} packets dropped by firewall rules (nftables/iptables, \
                     NetworkPolicy)",
                    row.pod
                ),
                pods: vec![row.pod.clone()],
                window: c.pod_window(&[Metric::RuleDrops, Metric::VerdictDrops], row.netns),
                evidence: vec![
                    ev("dropped by an nf_tables rule (nft_do_chain)", Some(row.rule_drops), None),
                    ev(
                        "dropped by another hook's verdict (nf_hook_slow), beyond conntrack's",
                        Some(other_verdicts),
                        None,
                    ),
                ],
                remedy: vec![
                    format!(
                        "check the rules in {}'s network namespace (`nft list ruleset`, \
                         `iptables-save`) and the NetworkPolicies that select it; the kernel \
                         counts these only where a rule has a counter",
                        row.pod
                    ),
                    format!("`netprobe watch --pod {} --events drops` shows the flows", row.pod),
                ],
            });
        }
    }
}

fn listen<K: Fn(Subject) -> bool>(c: &Ctx<K>, out: &mut Vec<Finding>) {
    for l in c.r.listen_drops.iter().filter(|l| l.listen_overflows > 0) {
        let sockets: Vec<_> = c.r.listen_overflows.iter().filter(|s| s.netns == l.netns).collect();
        let by_socket: u64 = sockets.iter().map(|s| s.drops).sum();
        let mut evidence = vec![ev(
            "connection attempts dropped on a full accept queue (per listener, sk_drops)",
            Some(by_socket),
            Some((l.listen_overflows, "TcpExt ListenOverflows")),
        )];
        evidence.extend(sockets.iter().map(|s| {
            ev(
                format!("listener {}:{}: accept queue {}/{}", s.addr, s.port, s.queue, s.max_queue),
                Some(s.drops),
                None,
            )
        }));
        let limit = sockets.first().map_or("?".into(), |s| s.max_queue.to_string());
        out.push(Finding {
            id: LISTEN_OVERFLOW,
            severity: Severity::Critical,
            summary: format!(
                "{}: {} connection attempts dropped because an accept queue was full",
                l.pod, l.listen_overflows
            ),
            pods: vec![l.pod.clone()],
            window: c.pod_window(&[Metric::KernelListenOverflows], l.netns),
            evidence,
            remedy: vec![
                format!(
                    "raise net.core.somaxconn in {} and the application's listen() backlog \
                     (the queue limit is now {limit}); net.ipv4.tcp_max_syn_backlog for the SYN \
                     queue",
                    l.pod
                ),
                "accept faster: more acceptor threads/workers, or a server that is not stalled"
                    .into(),
            ],
        });
    }
}

/// Whether a connect() EADDRNOTAVAIL site looks like the ephemeral range used up.
fn exhausted(site: &PortErrorSite) -> bool {
    let size = site.ip_local_port_range.as_deref().and_then(|r| {
        let (lo, hi) = r.split_once('-')?;
        Some(hi.trim().parse::<u64>().ok()? + 1 - lo.trim().parse::<u64>().ok()?)
    });
    match (size, site.time_wait_to_destination) {
        (Some(size), Some(tw)) => tw as f64 >= size as f64 * EXHAUSTED_SHARE,
        // Without the pod's context, the common cause.
        _ => true,
    }
}

fn ports<K: Fn(Subject) -> bool>(c: &Ctx<K>, out: &mut Vec<Finding>) {
    let mut netns: Vec<(u32, String)> =
        c.r.ports.iter().map(|p| (p.netns, p.pod.clone())).collect();
    netns.sort();
    netns.dedup();
    for (ns, pod) in netns {
        let exact = |op: &str, errno: &str| {
            c.r.ports
                .iter()
                .filter(|p| p.netns == ns && p.op == op && (errno.is_empty() || p.errno == errno))
                .map(|p| p.count)
                .sum::<u64>()
        };
        let sites: Vec<&PortErrorSite> = c.r.port_errors.iter().filter(|s| s.netns == ns).collect();
        let connect_na = exact("connect", "EADDRNOTAVAIL");
        let (full, collided): (Vec<&PortErrorSite>, Vec<&PortErrorSite>) = sites
            .iter()
            .filter(|s| s.op == "connect" && s.errno == "EADDRNOTAVAIL")
            .partition(|s| exhausted(s));
        let site_evidence = |s: &&PortErrorSite| {
            let at = match (s.addr, s.port) {
                (Some(a), Some(p)) => format!("{a}:{p}"),
                _ => "?".into(),
            };
            ev(
                format!(
                    "{} by {} to {at}: port range {}, {} in TIME_WAIT to it",
                    s.op,
                    s.comm,
                    s.ip_local_port_range.as_deref().unwrap_or("?"),
                    s.time_wait_to_destination.map_or("?".into(), |n| n.to_string())
                ),
                Some(s.count),
                None,
            )
        };
        let window = c.pod_window(&[Metric::PortErrors], ns);
        // Samples may miss some errors; exact counts go to the kind the samples show.
        if connect_na > 0 && (!full.is_empty() || collided.is_empty()) {
            let range = full.first().and_then(|s| s.ip_local_port_range.clone());
            let mut evidence =
                vec![ev("connect() failed with EADDRNOTAVAIL", Some(connect_na), None)];
            evidence.extend(full.iter().map(site_evidence));
            out.push(Finding {
                id: EPHEMERAL_PORT_EXHAUSTION,
                severity: Severity::Critical,
                summary: format!(
                    "{pod}: {connect_na} connect() calls found no free ephemeral port \
                     (EADDRNOTAVAIL)"
                ),
                pods: vec![pod.clone()],
                window: window.clone(),
                evidence,
                remedy: vec![
                    "reuse connections: connection pooling / HTTP keep-alive, so each request \
                     does not leave a port in TIME_WAIT"
                        .into(),
                    "net.ipv4.tcp_tw_reuse=1 lets new outgoing connections reuse TIME_WAIT ports \
                     (safe with timestamps; never tcp_tw_recycle)"
                        .into(),
                    format!(
                        "widen net.ipv4.ip_local_port_range (now {}), e.g. 10000 65535",
                        range.as_deref().unwrap_or("?")
                    ),
                ],
            });
        }
        let bind_errors = exact("bind", "");
        if !collided.is_empty() || bind_errors > 0 {
            let mut evidence = Vec::new();
            if bind_errors > 0 {
                evidence.push(ev(
                    "bind() failed (EADDRINUSE/EADDRNOTAVAIL)",
                    Some(bind_errors),
                    None,
                ));
            }
            if !collided.is_empty() {
                evidence.push(ev(
                    "connect() failed with EADDRNOTAVAIL with ephemeral ports to spare",
                    Some(connect_na),
                    None,
                ));
            }
            evidence.extend(
                collided.iter().chain(sites.iter().filter(|s| s.op == "bind")).map(site_evidence),
            );
            out.push(Finding {
                id: BIND_CONFLICT,
                severity: Severity::Critical,
                summary: format!(
                    "{pod}: an address or 4-tuple was already taken: a socket bound to a \
                     fixed source port collides with a live connection or listener"
                ),
                pods: vec![pod.clone()],
                window,
                evidence,
                remedy: vec![
                    "do not bind() a fixed source port before connect(); if a source address \
                     must be chosen, set IP_BIND_ADDRESS_NO_PORT so the kernel picks the port \
                     at connect() (the Envoy/cilium-proxy fix of incident 03)"
                        .into(),
                    "for listeners: find who holds the port (`ss -ltnp` in the pod), or use \
                     SO_REUSEPORT deliberately"
                        .into(),
                ],
            });
        }
    }
}

fn drops<K: Fn(Subject) -> bool>(c: &Ctx<K>, out: &mut Vec<Finding>) {
    // Drops at the sites the other findings explain are theirs; a closing socket's purge
    // loses nothing on the network.
    let explained = |netns: u32, reason: &str| -> u64 {
        let tl = c.tl;
        [Metric::VerdictDrops, Metric::RuleDrops, Metric::BacklogDrops, Metric::TeardownDrops]
            .iter()
            .map(|m| tl.total(&(*m, Subject::Netns(netns), reason.to_owned())))
            .sum()
    };
    for d in &c.r.drops {
        let rest = d.count.saturating_sub(explained(d.netns, &d.reason));
        let this = |s: Subject, l: &str| s == Subject::Netns(d.netns) && l == d.reason;
        if rest < DROPS_PER_S_MIN || c.tl.peak(Metric::Drops, this) < DROPS_PER_S_MIN {
            continue;
        }
        let k = c.kernel(d.netns);
        let mut evidence = vec![ev(format!("dropped, reason {}", d.reason), Some(rest), None)];
        let here: Vec<_> =
            c.tl.totals(Metric::DropLocation)
                .filter(|(s, l, _)| {
                    *s == Subject::Netns(d.netns) && l.ends_with(&format!(" {}", d.reason))
                })
                .collect();
        evidence.extend(here.iter().take(3).map(|(_, l, n)| {
            ev(format!("at {}", l.split(' ').next().unwrap_or(l)), Some(*n), None)
        }));
        // The pod's own counters that count refused packets, for comparison.
        if k.udp_no_ports + k.tcp_out_rsts > 0 {
            evidence.push(ev(
                "the same drops, next to the pod's UDP datagrams to closed ports and TCP resets \
                 sent (they agree when the reason is about a missing socket)",
                Some(rest),
                Some((k.udp_no_ports + k.tcp_out_rsts, "Udp(6) NoPorts + Tcp OutRsts")),
            ));
        }
        out.push(Finding {
            id: PACKET_DROPS,
            severity: Severity::Warning,
            summary: format!(
                "{}: {rest} packets dropped by the kernel with reason {}",
                d.pod, d.reason
            ),
            pods: vec![d.pod.clone()],
            window: c
                .window(&[Metric::Drops], |s, l| s == Subject::Netns(d.netns) && l == d.reason),
            evidence,
            remedy: vec![
                format!(
                    "the kernel documents reason {} as SKB_DROP_REASON_{} in \
                     include/net/dropreason-core.h; the locations above say which code path",
                    d.reason, d.reason
                ),
                format!(
                    "`netprobe watch --pod {} --events drops` shows the flows: for a reason \
                     about sockets, who sends to a port nothing listens on",
                    d.pod
                ),
            ],
        });
    }
}

fn tcp<K: Fn(Subject) -> bool>(c: &Ctx<K>, out: &mut Vec<Finding>) {
    let count = |netns: u32, event: &str| {
        c.r.tcp
            .iter()
            .filter(|t| t.netns == netns && t.event == event)
            .map(|t| t.count)
            .sum::<u64>()
    };
    let mut pods: Vec<(u32, String)> = c.r.tcp.iter().map(|t| (t.netns, t.pod.clone())).collect();
    pods.sort();
    pods.dedup();
    for (netns, pod) in pods {
        let k = c.kernel(netns);
        let syn = count(netns, "syn_retransmit");
        if syn >= SYN_RETRANS_MIN {
            let mut evidence = vec![ev(
                "SYNs retransmitted (a connect() waiting for a SYN-ACK)",
                Some(syn),
                Some((k.tcp_syn_retrans, "TcpExt TCPSynRetrans")),
            )];
            let dests: Vec<_> =
                c.r.handshake_timeouts.iter().filter(|h| h.netns == netns).collect();
            evidence.extend(dests.iter().map(|h| {
                ev(
                    format!("to {}:{} ({} resets back)", h.daddr, h.dport, h.rst_received),
                    Some(h.syn_retransmits),
                    None,
                )
            }));
            let to =
                dests.first().map_or(String::new(), |h| format!(" to {}:{}", h.daddr, h.dport));
            out.push(Finding {
                id: SYN_RETRANSMITS,
                severity: Severity::Critical,
                summary: format!(
                    "{pod}: {syn} SYNs retransmitted{to}: connections wait 1 s, 3 s, 7 s... or \
                     time out (handshake timeouts)"
                ),
                pods: vec![pod.clone()],
                window: c.window(&[Metric::Tcp], |s, l| {
                    s == Subject::Netns(netns) && l == "syn_retransmit"
                }),
                evidence,
                remedy: vec![
                    "the SYN or its SYN-ACK is lost on the way: a load balancer hairpin (a \
                     target reaching itself through an NLB with client IP preservation: \
                     preserve_client_ip.enabled=false, or call the service directly; incident \
                     05), a firewall/security group, or a full listen queue (listen_overflow)"
                        .into(),
                    "net.ipv4.tcp_syn_retries bounds how long connect() waits".into(),
                ],
            });
        }
        let data = count(netns, "retransmit");
        let share = if k.tcp_out_segs > 0 { data as f64 / k.tcp_out_segs as f64 } else { 1.0 };
        if data >= RETRANS_MIN && share >= RETRANS_WARN {
            let mut evidence = vec![
                ev(
                    "data segments retransmitted",
                    Some(data),
                    Some((k.tcp_retrans_segs, "Tcp RetransSegs")),
                ),
                ev(
                    format!("share of segments sent: {:.1}%", 100.0 * share),
                    None,
                    Some((k.tcp_out_segs, "Tcp OutSegs")),
                ),
            ];
            evidence.extend(
                c.r.retransmit_paths
                    .iter()
                    .filter(|p| p.netns == netns)
                    .take(3)
                    .map(|p| ev(format!("towards {}:{}", p.daddr, p.dport), Some(p.segs), None)),
            );
            out.push(Finding {
                id: RETRANSMIT_STORM,
                severity: if share >= RETRANS_CRITICAL {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                summary: format!(
                    "{pod}: {data} TCP segments retransmitted ({:.1}% of those sent): packets are \
                     lost on the path",
                    100.0 * share
                ),
                pods: vec![pod.clone()],
                window: c
                    .window(&[Metric::Tcp], |s, l| s == Subject::Netns(netns) && l == "retransmit"),
                evidence,
                remedy: vec![
                    "find where the path loses packets: drops on the way (`netprobe report` drops \
                     and their locations), interface errors (`ip -s link`), qdisc drops (`tc -s \
                     qdisc`), MTU black holes"
                        .into(),
                ],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        families::conntrack::stats::Stats,
        family::Family,
        frames::{fixture, Frame, Frames, KernelCounters, Snapshot, TcpRow},
        kstat::NetnsCounters,
        report::{Builder, Report},
    };

    const POD: u32 = 4026532000;

    /// A report from two snapshots a second apart: `before` and `after` the pod's state.
    fn report(before: Snapshot, after: Snapshot) -> Report {
        let mut b = Builder::default();
        b.frame(&Frame::Header(fixture::header(&[Family::Tcp, Family::Conntrack])));
        b.frame(&Frame::Pods(BTreeMap::from([(POD, "web-1".to_owned())])));
        b.frame(&Frame::Snapshot(Snapshot { t_ns: 1_000_000_000, ..before }));
        b.frame(&Frame::Snapshot(Snapshot { t_ns: 2_000_000_000, ..after }));
        b.finish(None).unwrap()
    }

    fn kernel(c: NetnsCounters) -> KernelCounters {
        KernelCounters { netns: BTreeMap::from([(POD, c)]), ..Default::default() }
    }

    fn ids(r: &Report) -> Vec<&str> {
        r.findings.iter().map(|f| f.id).collect()
    }

    #[test]
    fn nothing_grew_nothing_found() {
        let busy = NetnsCounters { tcp_out_segs: 5000, tcp_retrans_segs: 40, ..Default::default() };
        let s = Snapshot { kernel: kernel(busy), ..Default::default() };
        assert_eq!(ids(&report(s.clone(), s)), Vec::<&str>::new());
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
        assert_eq!(ids(&r), [CONNTRACK_INSERT_FAILED]);
        let f = &r.findings[0];
        // netprobe saw no verdict drops here: the kernel's 12 are not confirmed by them.
        assert_eq!(f.confidence(), Confidence::Measured);
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
        assert_eq!(ids(&report(s(10), s(700))), Vec::<&str>::new());
        let r = report(s(10), s(800));
        assert_eq!(ids(&r), [CONNTRACK_NEAR_FULL]);
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
        let syn = |count| vec![TcpRow { netns: POD, event: "syn_retransmit".into(), count }];
        let r = report(
            Snapshot { kernel: kernel(k(0, 0)), ..Default::default() },
            Snapshot { kernel: kernel(k(30, 30)), tcp: syn(30), ..Default::default() },
        );
        assert_eq!(ids(&r), [LISTEN_OVERFLOW, SYN_RETRANSMITS]);
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
        let re = |count| vec![TcpRow { netns: POD, event: "retransmit".into(), count }];
        let quiet = report(
            Snapshot { kernel: kernel(k(0, 0)), ..Default::default() },
            Snapshot { kernel: kernel(k(100_000, 20)), tcp: re(20), ..Default::default() },
        );
        assert_eq!(ids(&quiet), Vec::<&str>::new());
        let storm = report(
            Snapshot { kernel: kernel(k(0, 0)), ..Default::default() },
            Snapshot { kernel: kernel(k(1000, 80)), tcp: re(80), ..Default::default() },
        );
        assert_eq!(ids(&storm), [RETRANSMIT_STORM]);
        assert_eq!(storm.findings[0].severity, Severity::Critical);
    }
}
