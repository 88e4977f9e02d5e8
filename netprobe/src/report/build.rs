//! Frames to a report: the one engine behind the live report and `report --from`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
};

use super::{
    findings,
    timeline::{Metric, Subject, Timeline},
    ConntrackRow, DropCount, HandshakeTimeout, ListenDropCount, ListenOverflowCount, LocationCount,
    PodKernel, PortCount, PortErrorSite, Report, RetransmitPath, SoftnetReport, TcpCount,
    TimelineView, REPORT_VERSION,
};
use crate::{
    clock::Clock,
    event::Event,
    families::{
        bursts::{histogram::PodRates, BurstEvent},
        conntrack::{NODE_WIDE, UTILISATION_WARN},
        softnet::{CpuSoftnet, Knobs},
    },
    families::{ports::PortOp, tcp::TcpEventKind},
    frames::{End, Frame, Frames, Header, Snapshot},
    pods::{self, PodMeta},
    report::timeline::Pods,
};

/// Rows listed in sampled tables.
const TOP: usize = 10;
/// SYN retransmits to one destination from which on it is a handshake-timeout pattern.
const HANDSHAKE_TIMEOUT_MIN: u64 = 2;

#[derive(Default)]
pub struct Builder {
    header: Option<Header>,
    pods: Pods,
    first: Option<Snapshot>,
    last: Option<Snapshot>,
    timeline: Timeline,
    /// Per netns: the fullest its conntrack table was seen, and its limit.
    conntrack_peak: HashMap<u32, (u64, u64)>,
    sampled: Sampled,
    end: Option<End>,
    /// The softnet sysctls when CPUs last squeezed or dropped, which may not be the last ones.
    trouble_knobs: Option<Knobs>,
    rates: Vec<PodRates>,
    /// Every netns the collection's selection matched, when it had one.
    selected: Option<BTreeSet<u32>>,
}

impl Frames for Builder {
    fn frame(&mut self, frame: &Frame) {
        match frame {
            Frame::Header(h) => self.header = Some(h.clone()),
            // Pods that went away keep their names.
            Frame::Pods(pods) => self.pods.update(pods),
            Frame::Snapshot(s) => self.snapshot(s),
            Frame::Event(e) => self.sampled.event(e.clone()),
            Frame::Rates(r) => self.rates = r.clone(),
            Frame::Selected(set) => self.selected.get_or_insert_default().extend(set),
            Frame::End(e) => self.end = Some(e.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no header frame: nothing was collected")]
    NoHeader,
    #[error("no counter snapshot: nothing was collected")]
    NoSnapshot,
    #[error("no pod named `{name}` in this recording. Its pods: {}", known.join(", "))]
    UnknownPod { name: String, known: Vec<String> },
}

impl Builder {
    fn snapshot(&mut self, s: &Snapshot) {
        for (netns, c) in &s.kernel.netns {
            if let Some(ct) = c.conntrack {
                let peak = self.conntrack_peak.entry(*netns).or_default();
                *peak = (peak.0.max(ct.count), ct.max);
            }
        }
        match (&self.last, &self.header) {
            (Some(last), Some(h)) => {
                self.timeline.push(last, s, &h.reasons, &self.pods);
                let now = |m| self.timeline.sum(m, |_, _| true).last().copied().unwrap_or(0);
                if now(Metric::KernelTimeSqueeze) + now(Metric::KernelBacklogDropped) > 0 {
                    self.trouble_knobs = Some(s.kernel.knobs.clone());
                }
            }
            _ => self.first = Some(s.clone()),
        }
        self.last = Some(s.clone());
    }

    /// The pod behind a series id (a netns inode, or a pod on a reused inode).
    fn name(&self, id: u32) -> String {
        let known = self.timeline.names.get(&id).cloned();
        known
            .or_else(|| self.pods.meta(id).map(PodMeta::display))
            .unwrap_or_else(|| pods::unnamed(self.pods.inode(id)))
    }

    /// The report; `pod` limits it to one pod (by name, or `netns:<inode>`).
    pub fn finish(self, pod: Option<&str>) -> Result<Report, BuildError> {
        let header = self.header.as_ref().ok_or(BuildError::NoHeader)?;
        let (Some(first), Some(last)) = (&self.first, &self.last) else {
            return Err(BuildError::NoSnapshot);
        };
        // Asked for now (replay), else what the collection selected: every pod that matched
        // at some point, or (version 1) the one pod it was limited to.
        let only: Option<BTreeSet<u32>> = match (pod, &header.pod) {
            (Some(name), _) => {
                Some(BTreeSet::from([self.lookup(name).ok_or_else(|| BuildError::UnknownPod {
                    name: name.to_owned(),
                    known: self.pods.all().map(|(_, p)| p.display()).collect(),
                })?]))
            }
            (None, Some(_)) => Some(match (&self.selected, header.pod_netns) {
                (Some(set), _) => set.clone(),
                (None, n) => n.into_iter().collect(),
            }),
            (None, None) => None,
        };
        let pod = pod.map(str::to_owned).or_else(|| header.pod.clone());
        let keep = |s: Subject| match (s, &only) {
            (Subject::Netns(id), Some(set)) => set.contains(&self.pods.inode(id)),
            _ => true,
        };
        let tl = &self.timeline;
        // Series ids are netns inodes, except for a pod on a reused inode.
        let id_of = |s: Subject| match s {
            Subject::Netns(n) => n,
            Subject::Cpu(_) => 0,
        };
        let netns_of = |s: Subject| self.pods.inode(id_of(s));
        let drop_rows = |metric| {
            let mut rows: Vec<DropCount> = tl
                .totals(metric)
                .filter(|(s, ..)| keep(*s))
                .map(|(s, reason, count)| DropCount {
                    pod: self.name(id_of(s)),
                    netns: netns_of(s),
                    reason: reason.to_owned(),
                    reason_code: header.reasons.value(reason),
                    count,
                })
                .collect();
            rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
            rows
        };
        let drops = drop_rows(Metric::Drops);

        let mut by_location: HashMap<&str, u64> = HashMap::new();
        for (_, label, count) in tl.totals(Metric::DropLocation).filter(|(s, ..)| keep(*s)) {
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

        let mut tcp: Vec<TcpCount> = tl
            .totals(Metric::Tcp)
            .filter(|(s, ..)| keep(*s))
            .map(|(s, event, count)| TcpCount {
                pod: self.name(id_of(s)),
                netns: netns_of(s),
                event: event.to_owned(),
                count,
            })
            .collect();
        tcp.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));

        let mut ports: Vec<PortCount> = tl
            .totals(Metric::PortErrors)
            .filter(|(s, ..)| keep(*s))
            .map(|(s, label, count)| {
                let (op, errno) = label.split_once(' ').unwrap_or((label, ""));
                PortCount {
                    pod: self.name(id_of(s)),
                    netns: netns_of(s),
                    op: op.into(),
                    errno: errno.into(),
                    count,
                }
            })
            .collect();
        ports.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));

        // The kernel's own counters per pod, over the report.
        let mut kernel: BTreeMap<u32, PodKernel> = BTreeMap::new();
        for (key, values) in &tl.series {
            let (metric, Subject::Netns(netns), _) = key else { continue };
            let total: u64 = values.iter().sum();
            if total == 0 || !keep(Subject::Netns(*netns)) {
                continue;
            }
            let row = kernel.entry(*netns).or_insert_with(|| PodKernel {
                pod: self.name(*netns),
                netns: self.pods.inode(*netns),
                ..Default::default()
            });
            let slot = match metric {
                Metric::KernelTcpOutSegs => &mut row.tcp_out_segs,
                Metric::KernelTcpRetransSegs => &mut row.tcp_retrans_segs,
                Metric::KernelTcpOutRsts => &mut row.tcp_out_rsts,
                Metric::KernelTcpSynRetrans => &mut row.tcp_syn_retrans,
                Metric::KernelListenOverflows => &mut row.listen_overflows,
                Metric::KernelListenDrops => &mut row.listen_drops,
                Metric::KernelUdpNoPorts => &mut row.udp_no_ports,
                Metric::KernelIpPackets => &mut row.ip_packets,
                Metric::KernelConntrackDrop => &mut row.conntrack_drop,
                Metric::KernelConntrackInsertFailed => &mut row.conntrack_insert_failed,
                Metric::KernelConntrackEarlyDrop => &mut row.conntrack_early_drop,
                Metric::KernelConntrackInvalid => &mut row.conntrack_invalid,
                _ => continue,
            };
            *slot = total;
        }

        let mut listen_drops: Vec<ListenDropCount> = kernel
            .values()
            .filter(|k| k.listen_overflows + k.listen_drops > 0)
            .map(|k| ListenDropCount {
                pod: k.pod.clone(),
                netns: k.netns,
                listen_overflows: k.listen_overflows,
                listen_drops: k.listen_drops,
            })
            .collect();
        listen_drops
            .sort_by(|a, b| b.listen_drops.cmp(&a.listen_drops).then_with(|| a.pod.cmp(&b.pod)));

        let verdict = drop_rows(Metric::VerdictDrops);
        let rule = drop_rows(Metric::RuleDrops);
        let sum_for = |rows: &[DropCount], netns| {
            rows.iter().filter(|d| d.netns == netns).map(|d| d.count).sum::<u64>()
        };
        let mut conntrack: Vec<ConntrackRow> = Vec::new();
        let mut netns_seen: Vec<u32> = verdict.iter().chain(&rule).map(|d| d.netns).collect();
        netns_seen.extend(kernel.keys());
        netns_seen.extend(self.conntrack_peak.keys());
        netns_seen.extend(self.sampled.table_full_messages.keys());
        netns_seen.sort_unstable();
        netns_seen.dedup();
        // Messages that name no netns may be any pod's: kept in a report limited to pods too.
        let node_wide =
            |n: u32| n == NODE_WIDE && self.sampled.table_full_messages.contains_key(&n);
        for netns in netns_seen.into_iter().filter(|n| keep(Subject::Netns(*n)) || node_wide(*n)) {
            let k = kernel.get(&netns).cloned().unwrap_or_default();
            let (peak, max) = self.conntrack_peak.get(&netns).copied().unwrap_or_default();
            let row = ConntrackRow {
                pod: self.name(netns),
                netns,
                table_full_drops: k.conntrack_drop,
                insert_failed: k.conntrack_insert_failed,
                early_drop: k.conntrack_early_drop,
                invalid: k.conntrack_invalid,
                verdict_drops: sum_for(&verdict, netns),
                rule_drops: sum_for(&rule, netns),
                peak_count: peak,
                max,
                table_full_messages: self
                    .sampled
                    .table_full_messages
                    .get(&netns)
                    .copied()
                    .unwrap_or(0),
            };
            let full = max > 0 && peak as f64 >= max as f64 * UTILISATION_WARN;
            let trouble = row.table_full_drops
                + row.insert_failed
                + row.early_drop
                + row.invalid
                + row.verdict_drops
                + row.rule_drops
                + row.table_full_messages;
            if trouble > 0 || full {
                conntrack.push(row);
            }
        }
        conntrack.sort_by(|a, b| {
            (b.table_full_drops + b.verdict_drops).cmp(&(a.table_full_drops + a.verdict_drops))
        });

        let has_softnet =
            header.families.iter().any(|f| f.family == crate::family::Family::Softnet);
        let softnet = has_softnet.then(|| {
            let cpu_total = |m, cpu| tl.total(&(m, Subject::Cpu(cpu), String::new()));
            let cpus = last
                .softnet
                .iter()
                .map(|c| CpuSoftnet {
                    cpu: c.cpu,
                    runs: cpu_total(Metric::SoftnetRuns, c.cpu),
                    packets: cpu_total(Metric::SoftnetPackets, c.cpu),
                    busy_ns: cpu_total(Metric::SoftnetBusyNs, c.cpu),
                    squeezes: cpu_total(Metric::Squeezes, c.cpu),
                    covered_runs: cpu_total(Metric::SqueezeCoveredRuns, c.cpu),
                })
                .collect();
            let kernel_cpus = last
                .kernel
                .softnet_stat
                .iter()
                .map(|c| super::KernelCpu {
                    cpu: c.cpu,
                    time_squeeze: cpu_total(Metric::KernelTimeSqueeze, c.cpu),
                    dropped: cpu_total(Metric::KernelBacklogDropped, c.cpu),
                })
                .collect();
            SoftnetReport {
                knobs: self.trouble_knobs.clone().unwrap_or_else(|| last.kernel.knobs.clone()),
                cpus,
                kernel_cpus,
                backlog_drops: drop_rows(Metric::BacklogDrops),
                max_squeezed_packets: self.sampled.max_squeezed.0,
                max_squeezed_us: self.sampled.max_squeezed.1,
            }
        });

        let sampled = &self.sampled;
        let in_scope = |netns: u32| only.as_ref().is_none_or(|set| set.contains(&netns));
        let mut handshake_timeouts: Vec<HandshakeTimeout> = sampled
            .handshakes
            .iter()
            .filter(|((netns, ..), (syn, _))| *syn >= HANDSHAKE_TIMEOUT_MIN && in_scope(*netns))
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

        let mut retransmit_paths: Vec<RetransmitPath> = sampled
            .retransmits
            .iter()
            .filter(|((netns, ..), _)| in_scope(*netns))
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

        let mut port_errors: Vec<PortErrorSite> =
            sampled.port_sites.values().filter(|p| in_scope(p.netns)).cloned().collect();
        port_errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
        port_errors.truncate(TOP);

        let mut listen_overflows: Vec<ListenOverflowCount> =
            sampled.listen.values().filter(|l| in_scope(l.netns)).cloned().collect();
        listen_overflows.sort_by(|a, b| b.drops.cmp(&a.drops).then_with(|| a.pod.cmp(&b.pod)));

        let all_bursts: Vec<&BurstEvent> =
            sampled.bursts.iter().filter(|b| in_scope(b.netns)).collect();
        let mut bursts: Vec<BurstEvent> = all_bursts.iter().map(|b| (*b).clone()).collect();
        bursts.sort_by_key(|b| std::cmp::Reverse(b.packets));
        bursts.truncate(TOP);

        let clock = Clock::fixed(header.started_monotonic_ns, header.started_unix_ns);
        let end_ns = self.end.as_ref().map_or(last.t_ns, |e| e.t_ns.max(last.t_ns));
        let view = TimelineView::new(tl, &clock, |n| self.name(n), keep, &all_bursts);
        let mut report = Report {
            version: REPORT_VERSION,
            from: clock.wall(first.t_ns),
            to: clock.wall(end_ns),
            duration_s: end_ns.saturating_sub(first.t_ns) as f64 / 1e9,
            host: header.hostname.clone(),
            kernel_release: header.kernel.clone(),
            complete: self.end.as_ref().is_none_or(|e| e.complete),
            note: self.end.as_ref().and_then(|e| e.note.clone()),
            pod,
            families: header.families.clone(),
            unavailable: header.unavailable.clone(),
            findings: Vec::new(),
            drops,
            locations,
            tcp,
            handshake_timeouts,
            retransmit_paths,
            listen_drops,
            listen_overflows,
            conntrack,
            softnet,
            burst_count: all_bursts.len() as u64,
            bursts,
            burst_rates: self
                .rates
                .iter()
                .filter(|r| only.is_none() || self.lookup(&r.pod).is_some_and(&in_scope))
                .cloned()
                .collect(),
            ports,
            port_errors,
            kernel: kernel.into_values().collect(),
            timeline: view,
            samples: sampled.samples + self.end.as_ref().map_or(0, |e| e.drop_samples),
            health: last.health,
            pods: Vec::new(),
        };
        report.findings = findings::find(&report, tl, &clock, keep);
        report.pods = self.pods_named(&report);
        Ok(report)
    }

    /// The pods that rows, findings and the timeline of `r` name.
    fn pods_named(&self, r: &Report) -> Vec<super::PodInfo> {
        let mut named: BTreeSet<&str> =
            r.timeline.series.iter().filter_map(|s| s.pod.as_deref()).collect();
        named.extend(r.findings.iter().flat_map(|f| f.pods.iter().map(String::as_str)));
        named.extend(r.listen_overflows.iter().map(|l| l.pod.as_str()));
        named.extend(r.port_errors.iter().map(|p| p.pod.as_str()));
        named.extend(r.handshake_timeouts.iter().map(|h| h.pod.as_str()));
        named.extend(r.bursts.iter().map(|b| b.pod.as_str()));
        let mut out: Vec<super::PodInfo> = self
            .pods
            .all()
            .filter(|(_, m)| named.contains(m.display().as_str()))
            .map(|(n, m)| super::PodInfo { pod: m.display(), netns: *n, meta: m.clone() })
            .collect();
        out.sort_by(|a, b| a.pod.cmp(&b.pod));
        out
    }

    fn lookup(&self, name: &str) -> Option<u32> {
        if let Some(inode) = name.strip_prefix("netns:").and_then(|s| s.parse().ok()) {
            return Some(inode);
        }
        if let Some((n, _)) = self.pods.all().find(|(_, p)| p.display() == name) {
            return Some(*n);
        }
        let mut bare = self.pods.all().filter(|(_, p)| p.name == name);
        match (bare.next(), bare.next()) {
            (Some((n, _)), None) => Some(*n),
            _ => None,
        }
    }
}

/// What the report learns from samples and listener polls.
#[derive(Default)]
struct Sampled {
    /// (netns, pod, daddr, dport) -> (SYN retransmits, RSTs received).
    handshakes: HashMap<(u32, String, IpAddr, u16), (u64, u64)>,
    /// (netns, pod, daddr, dport) -> retransmitted data segments.
    retransmits: HashMap<(u32, String, IpAddr, u16), u64>,
    listen: HashMap<(u32, IpAddr, u16), ListenOverflowCount>,
    port_sites: HashMap<SiteKey, PortErrorSite>,
    table_full_messages: HashMap<u32, u64>,
    max_squeezed: (u64, f64),
    bursts: Vec<BurstEvent>,
    samples: u64,
}

/// (netns, comm, op, errno, addr, port) of a port error site.
type SiteKey = (u32, String, PortOp, String, Option<IpAddr>, Option<u16>);

impl Sampled {
    fn event(&mut self, event: Event) {
        match event {
            Event::ListenOverflow(l) => {
                let row =
                    self.listen.entry((l.netns, l.addr, l.port)).or_insert(ListenOverflowCount {
                        pod: l.pod,
                        netns: l.netns,
                        addr: l.addr,
                        port: l.port,
                        drops: 0,
                        queue: 0,
                        max_queue: 0,
                    });
                row.drops += u64::from(l.drops);
                (row.queue, row.max_queue) = (l.queue, l.max_queue);
            }
            Event::Burst(b) => self.bursts.push(b),
            Event::ListenQueue(_) | Event::Conntrack(_) | Event::Drop(_) => {}
            Event::Squeeze(q) => {
                self.samples += 1;
                self.max_squeezed.0 = self.max_squeezed.0.max(q.packets);
                self.max_squeezed.1 = self.max_squeezed.1.max(q.duration_us);
            }
            Event::ConntrackTableFull(m) => {
                self.samples += 1;
                *self.table_full_messages.entry(m.netns).or_default() += 1;
            }
            Event::Port(p) => {
                self.samples += 1;
                let (addr, port) = match p.op {
                    PortOp::Connect => (p.flow.daddr, p.flow.dport),
                    _ => (p.flow.saddr, p.flow.sport),
                };
                let key = (p.netns, p.comm.clone(), p.op, p.errno.clone(), addr, port);
                let site = self.port_sites.entry(key).or_insert_with(|| PortErrorSite {
                    pod: p.pod,
                    netns: p.netns,
                    comm: p.comm,
                    op: p.op,
                    errno: p.errno,
                    addr,
                    port,
                    count: 0,
                    ip_local_port_range: None,
                    bound_addr: None,
                    bound_port: None,
                    time_wait_to_destination: None,
                    time_wait_age_ms: None,
                });
                site.count += 1;
                site.ip_local_port_range = p.ip_local_port_range;
                (site.bound_addr, site.bound_port) = (p.bound_addr, p.bound_port);
                site.time_wait_to_destination = p.time_wait_to_destination;
                site.time_wait_age_ms = p.time_wait_age_ms;
            }
            Event::Tcp(t) => {
                self.samples += 1;
                let Some(daddr) = t.flow.daddr else { return };
                let key = (t.netns, t.pod, daddr, t.flow.dport.unwrap_or(0));
                match t.event {
                    TcpEventKind::SynRetransmit => self.handshakes.entry(key).or_default().0 += 1,
                    TcpEventKind::RstReceived => self.handshakes.entry(key).or_default().1 += 1,
                    TcpEventKind::Retransmit => {
                        *self.retransmits.entry(key).or_default() += u64::from(t.segs)
                    }
                    _ => {}
                }
            }
        }
    }
}
