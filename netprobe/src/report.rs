//! `netprobe report`: exact counts per pod for every family, and what the samples add (kernel
//! locations, handshake timeouts), after a fixed collection window.

use std::{collections::HashMap, net::IpAddr, time::Instant};

use crate::{
    agent::{Agent, Family, Health},
    bursts::BurstEvent,
    cli::{self, Format, ReportArgs},
    drops::sites,
    event::Event,
    run::{self, Sink},
    softnet::{CpuSoftnet, Knobs},
    tcp::decode::kind_name,
    tiers::{Skipped, Tier},
};

/// Rows listed in sampled tables.
const TOP: usize = 10;
/// SYN retransmits to one destination from which on it is a handshake-timeout pattern.
const HANDSHAKE_TIMEOUT_MIN: u64 = 2;
pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub version: u32,
    pub duration_s: f64,
    /// The pod the report was limited to, if any.
    pub pod: Option<String>,
    pub families: Vec<FamilyStatus>,
    /// Exact, from kernel counters; largest first.
    pub drops: Vec<DropCount>,
    /// Exact, from kernel counters keyed by location; largest first.
    pub locations: Vec<LocationCount>,
    /// Exact, from kernel counters; retransmits in segments.
    pub tcp: Vec<TcpCount>,
    /// From samples: destinations whose SYNs were retransmitted repeatedly.
    pub handshake_timeouts: Vec<HandshakeTimeout>,
    /// Exact, from each pod's own ListenOverflows and ListenDrops.
    pub listen_drops: Vec<ListenDropCount>,
    /// Per listening socket, from its own drop counter; largest first.
    pub listen_overflows: Vec<ListenOverflowCount>,
    /// Per pod with conntrack trouble or a nearly full table.
    pub conntrack: Vec<ConntrackRow>,
    /// Present when the softnet family ran.
    pub softnet: Option<SoftnetReport>,
    /// When the bursts family ran: how many were found, and the largest.
    pub burst_count: u64,
    pub bursts: Vec<BurstEvent>,
    /// Exact, from kernel counters.
    pub ports: Vec<PortCount>,
    /// From samples: who failed, towards where, with the pod's context.
    pub port_errors: Vec<PortErrorSite>,
    pub samples: u64,
    pub health: Health,
}

#[derive(Debug, serde::Serialize)]
pub struct FamilyStatus {
    pub family: Family,
    pub tier: Tier,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DropCount {
    pub pod: String,
    pub netns: u32,
    pub reason: String,
    pub reason_code: u32,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct LocationCount {
    pub location: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct TcpCount {
    pub pod: String,
    pub netns: u32,
    pub event: &'static str,
    pub count: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct HandshakeTimeout {
    pub pod: String,
    pub daddr: IpAddr,
    pub dport: u16,
    pub syn_retransmits: u64,
    pub rst_received: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ListenDropCount {
    pub pod: String,
    pub netns: u32,
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct ListenOverflowCount {
    pub pod: String,
    pub netns: u32,
    pub addr: IpAddr,
    pub port: u16,
    pub drops: u64,
    /// Accept queue length and limit at the last poll.
    pub queue: u32,
    pub max_queue: u32,
}

#[derive(Debug, serde::Serialize)]
pub struct SoftnetReport {
    /// The sysctls in force at the end of the report.
    pub knobs: Knobs,
    /// Exact, per CPU, over the report.
    pub cpus: Vec<CpuSoftnet>,
    /// Exact: drops freed where a CPU's backlog was full (the CPU RPS steered to), by pod.
    pub backlog_drops: Vec<DropCount>,
    /// From samples: the biggest squeezed run, in packets and in time.
    pub max_squeezed_packets: u64,
    pub max_squeezed_us: f64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ConntrackRow {
    pub pod: String,
    pub netns: u32,
    /// From the netns's own conntrack counters, growth over the report.
    pub table_full_drops: u64,
    pub insert_failed: u64,
    pub early_drop: u64,
    pub invalid: u64,
    /// Drops freed in nf_hook_slow: a hook's verdict (conntrack's, when the table
    /// is full), counted exactly by the drops family.
    pub verdict_drops: u64,
    /// Drops freed in nft_do_chain: an nf_tables rule (policy), counted exactly.
    pub rule_drops: u64,
    /// The fullest the table was seen: entries and limit.
    pub peak_count: u64,
    pub max: u64,
    /// The kernel's rate-limited "table full in netns" lines seen (a signal, not a count).
    pub table_full_messages: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct PortCount {
    pub pod: String,
    pub netns: u32,
    pub op: &'static str,
    pub errno: String,
    pub count: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PortErrorSite {
    pub pod: String,
    pub comm: String,
    pub op: String,
    pub errno: String,
    /// connect(): the destination; bind(): the address asked for.
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub count: u64,
    /// At the last sample.
    pub ip_local_port_range: Option<String>,
    pub time_wait_to_destination: Option<u32>,
}

/// (pod, comm, op, errno, addr, port) of a port error site.
type SiteKey = (String, String, String, String, Option<IpAddr>, Option<u16>);

/// What the report learns from samples (and listener polls).
#[derive(Default)]
struct Sampled {
    /// (pod, daddr, dport) -> (SYN retransmits, RSTs received).
    handshakes: HashMap<(String, IpAddr, u16), (u64, u64)>,
    listen: HashMap<(u32, IpAddr, u16), ListenOverflowCount>,
    listen_drops: HashMap<u32, ListenDropCount>,
    port_sites: HashMap<SiteKey, PortErrorSite>,
    conntrack: HashMap<u32, ConntrackRow>,
    max_squeezed: (u64, f64),
    bursts: Vec<BurstEvent>,
    samples: u64,
}

impl Sink for Sampled {
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
                return;
            }
            Event::Burst(b) => {
                self.bursts.push(b);
                return;
            }
            Event::ListenQueue(q) => {
                let row = self.listen_drops.entry(q.netns).or_insert_with(|| ListenDropCount {
                    pod: q.pod,
                    netns: q.netns,
                    ..Default::default()
                });
                row.listen_overflows += q.listen_overflows;
                row.listen_drops += q.listen_drops;
                return;
            }
            Event::Conntrack(c) => {
                let row = conntrack_row(&mut self.conntrack, c.netns, c.pod);
                row.table_full_drops += c.stats.drop;
                row.insert_failed += c.stats.insert_failed;
                row.early_drop += c.stats.early_drop;
                row.invalid += c.stats.invalid;
                row.peak_count = row.peak_count.max(c.stats.count);
                row.max = c.stats.max;
                return;
            }
            _ => self.samples += 1,
        }
        match event {
            Event::ListenOverflow(_)
            | Event::Burst(_)
            | Event::ListenQueue(_)
            | Event::Conntrack(_)
            | Event::Drop(_) => {}
            Event::Squeeze(q) => {
                self.max_squeezed.0 = self.max_squeezed.0.max(q.packets);
                self.max_squeezed.1 = self.max_squeezed.1.max(q.duration_us);
            }
            Event::ConntrackTableFull(m) => {
                conntrack_row(&mut self.conntrack, m.netns, m.pod).table_full_messages += 1
            }
            Event::Port(p) => {
                let (addr, port) = match p.op.as_str() {
                    "connect" => (p.flow.daddr, p.flow.dport),
                    _ => (p.flow.saddr, p.flow.sport),
                };
                let key =
                    (p.pod.clone(), p.comm.clone(), p.op.clone(), p.errno.clone(), addr, port);
                let site = self.port_sites.entry(key).or_insert_with(|| PortErrorSite {
                    pod: p.pod,
                    comm: p.comm,
                    op: p.op,
                    errno: p.errno,
                    addr,
                    port,
                    count: 0,
                    ip_local_port_range: None,
                    time_wait_to_destination: None,
                });
                site.count += 1;
                site.ip_local_port_range = p.ip_local_port_range;
                site.time_wait_to_destination = p.time_wait_to_destination;
            }
            Event::Tcp(t) => {
                let Some(daddr) = t.flow.daddr else { return };
                let key = (t.pod, daddr, t.flow.dport.unwrap_or(0));
                match t.event.as_str() {
                    "syn_retransmit" => self.handshakes.entry(key).or_default().0 += 1,
                    "rst_received" => self.handshakes.entry(key).or_default().1 += 1,
                    _ => {}
                }
            }
        }
    }
}

fn conntrack_row(
    rows: &mut HashMap<u32, ConntrackRow>,
    netns: u32,
    pod: String,
) -> &mut ConntrackRow {
    rows.entry(netns).or_insert_with(|| ConntrackRow { pod, netns, ..Default::default() })
}

pub async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let mut shutdown = run::Shutdown::install()?;
    let (pod, families) = (args.pod.clone(), cli::families(&args.events));
    let bursts = families.contains(&Family::Bursts);
    let Some(mut agent) = shutdown.start(move || Agent::start(pod.as_deref(), &families)).await?
    else {
        return Ok(());
    };
    if bursts {
        agent.watch_bursts(cli::BURST_BIN.as_nanos() as u64, cli::BURST_THRESHOLD)?;
    }
    agent.decode_drops = false;
    eprintln!(
        "netprobe: counting for {:.1?} ({}); Ctrl-C ends early",
        args.duration,
        agent.describe()
    );
    let started = Instant::now();
    let mut sampled = Sampled::default();
    run::collect(&mut agent, Some(args.duration), &mut sampled, &mut shutdown).await?;
    let report = build(&mut agent, sampled, started.elapsed().as_secs_f64())?;
    match args.format {
        Format::Text => print!("{}", text(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

fn build(agent: &mut Agent, mut sampled: Sampled, duration_s: f64) -> anyhow::Result<Report> {
    agent.names.pods.refresh();
    let names = &agent.names;
    let only = agent.pod_filter.as_ref().map(|(_, netns)| *netns);
    let keep = |netns: u32| only.is_none_or(|n| n == netns);

    let drop_counts = agent.drop_counts()?;
    let mut by_reason: HashMap<(u32, u32), u64> = HashMap::new();
    let mut by_site: HashMap<(String, String), u64> = HashMap::new();
    // Drops given a meaning by where they were freed (drops::sites), per netns.
    let mut by_function: HashMap<(u32, &'static str), u64> = HashMap::new();
    let mut backlog: HashMap<(u32, u32), u64> = HashMap::new();
    for (k, count) in drop_counts.iter().filter(|(k, _)| keep(k.netns)) {
        *by_reason.entry((k.netns, k.reason)).or_default() += count;
        let location = names.kallsyms.symbolize(k.location);
        match sites::function(&location) {
            sites::HOOK_VERDICT => {
                *by_function.entry((k.netns, sites::HOOK_VERDICT)).or_default() += count
            }
            sites::NFT_RULE => *by_function.entry((k.netns, sites::NFT_RULE)).or_default() += count,
            sites::BACKLOG_FULL => *backlog.entry((k.netns, k.reason)).or_default() += count,
            _ => {}
        }
        *by_site.entry((location, names.reasons.name(k.reason))).or_default() += count;
    }
    let mut drops: Vec<DropCount> = by_reason
        .into_iter()
        .map(|((netns, reason), count)| DropCount {
            pod: names.pods.name(netns),
            netns,
            reason: names.reasons.name(reason),
            reason_code: reason,
            count,
        })
        .collect();
    drops.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));

    let mut tcp: Vec<TcpCount> = agent
        .tcp_counts()?
        .into_iter()
        .filter(|(k, _)| keep(k.netns))
        .map(|(k, count)| TcpCount {
            pod: names.pods.name(k.netns),
            netns: k.netns,
            event: kind_name(k.kind),
            count,
        })
        .collect();
    tcp.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));

    let mut locations: Vec<LocationCount> = by_site
        .into_iter()
        .map(|((location, reason), count)| LocationCount { location, reason, count })
        .collect();
    locations.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.location.cmp(&b.location)));
    locations.truncate(TOP);

    let mut handshake_timeouts: Vec<HandshakeTimeout> = sampled
        .handshakes
        .into_iter()
        .filter(|(_, (syn, _))| *syn >= HANDSHAKE_TIMEOUT_MIN)
        .map(|((pod, daddr, dport), (syn_retransmits, rst_received))| HandshakeTimeout {
            pod,
            daddr,
            dport,
            syn_retransmits,
            rst_received,
        })
        .collect();
    handshake_timeouts.sort_by_key(|h| std::cmp::Reverse(h.syn_retransmits));
    handshake_timeouts.truncate(TOP);

    let mut ports: Vec<PortCount> = agent
        .port_counts()?
        .into_iter()
        .filter(|(k, _)| keep(k.netns))
        .map(|(k, count)| PortCount {
            pod: names.pods.name(k.netns),
            netns: k.netns,
            op: crate::ports::op_name(k.op),
            errno: crate::ports::errno_name(k.errno),
            count,
        })
        .collect();
    ports.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
    let mut port_errors: Vec<PortErrorSite> = sampled.port_sites.into_values().collect();
    port_errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
    port_errors.truncate(TOP);

    for ((netns, function), count) in by_function {
        let row = conntrack_row(&mut sampled.conntrack, netns, names.pods.name(netns));
        if function == sites::HOOK_VERDICT {
            row.verdict_drops += count;
        } else {
            row.rule_drops += count;
        }
    }
    for (netns, count, max) in agent.poller.conntrack_fill().filter(|(n, ..)| keep(*n)) {
        if max > 0 && count as f64 >= max as f64 * crate::conntrack::UTILISATION_WARN {
            let row = conntrack_row(&mut sampled.conntrack, netns, names.pods.name(netns));
            (row.peak_count, row.max) = (row.peak_count.max(count), max);
        }
    }
    let mut conntrack: Vec<ConntrackRow> = sampled.conntrack.into_values().collect();
    conntrack.sort_by(|a, b| {
        (b.table_full_drops + b.verdict_drops).cmp(&(a.table_full_drops + a.verdict_drops))
    });

    let softnet = match agent.attached.iter().any(|(f, _)| *f == Family::Softnet) {
        false => None,
        true => Some(SoftnetReport {
            knobs: Knobs::read(),
            cpus: agent.softnet()?,
            backlog_drops: {
                let mut rows: Vec<DropCount> = backlog
                    .into_iter()
                    .map(|((netns, reason), count)| DropCount {
                        pod: names.pods.name(netns),
                        netns,
                        reason: names.reasons.name(reason),
                        reason_code: reason,
                        count,
                    })
                    .collect();
                rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
                rows
            },
            max_squeezed_packets: sampled.max_squeezed.0,
            max_squeezed_us: sampled.max_squeezed.1,
        }),
    };

    let burst_count = sampled.bursts.len() as u64;
    let mut bursts = std::mem::take(&mut sampled.bursts);
    bursts.sort_by_key(|b| std::cmp::Reverse(b.packets));
    bursts.truncate(TOP);

    let mut listen_drops: Vec<ListenDropCount> = sampled.listen_drops.into_values().collect();
    listen_drops
        .sort_by(|a, b| b.listen_drops.cmp(&a.listen_drops).then_with(|| a.pod.cmp(&b.pod)));
    let mut listen_overflows: Vec<ListenOverflowCount> = sampled.listen.into_values().collect();
    listen_overflows.sort_by(|a, b| b.drops.cmp(&a.drops).then_with(|| a.pod.cmp(&b.pod)));

    Ok(Report {
        version: REPORT_VERSION,
        duration_s,
        pod: agent.pod_filter.as_ref().map(|(n, _)| n.clone()),
        families: agent
            .attached
            .iter()
            .map(|(family, a)| FamilyStatus {
                family: *family,
                tier: a.tier,
                skipped: a.skipped.clone(),
            })
            .collect(),
        drops,
        locations,
        tcp,
        handshake_timeouts,
        listen_drops,
        listen_overflows,
        conntrack,
        softnet,
        burst_count,
        bursts,
        ports,
        port_errors,
        samples: sampled.samples + agent.drops_drained,
        health: agent.health()?,
    })
}

pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let scope = r.pod.as_deref().map_or("all pods".to_owned(), |p| format!("pod {p}"));
    let hooks: Vec<String> =
        r.families.iter().map(|f| format!("{} via {}", f.family.name(), f.tier)).collect();
    s += &format!("netprobe report: {:.1} s, {scope}; {}\n", r.duration_s, hooks.join(", "));
    let has = |f| r.families.iter().any(|s| s.family == f);

    if has(Family::Drops) {
        let total: u64 = r.drops.iter().map(|d| d.count).sum();
        s += &format!("\nDrops by pod and reason (exact kernel counts, {total} in all)\n");
        let rows = r.drops.iter().map(|d| [d.pod.clone(), d.reason.clone(), d.count.to_string()]);
        s += &table(["POD", "REASON", "COUNT"], rows);
        s += "\nTop kernel drop locations (exact)\n";
        let rows =
            r.locations.iter().map(|l| [l.count.to_string(), l.location.clone(), l.reason.clone()]);
        s += &table(["COUNT", "LOCATION", "REASON"], rows);
        s += "\nListen queue drops by pod (exact, the pod's ListenOverflows and ListenDrops)\n";
        let rows = r
            .listen_drops
            .iter()
            .map(|l| [l.pod.clone(), l.listen_overflows.to_string(), l.listen_drops.to_string()]);
        s += &table(["POD", "OVERFLOWS", "DROPS"], rows);
        s += "By listening socket (its own drop counter, which also counts a few other discards)\n";
        let rows = r.listen_overflows.iter().map(|l| {
            [
                l.pod.clone(),
                format!("{}:{}", l.addr, l.port),
                l.drops.to_string(),
                format!("{}/{}", l.queue, l.max_queue),
            ]
        });
        s += &table(["POD", "LISTENER", "DROPPED", "ACCEPT QUEUE"], rows);
    }
    if has(Family::Tcp) {
        s += "\nTCP retransmits (segments) and resets by pod (exact kernel counts)\n";
        let rows = r.tcp.iter().map(|t| [t.pod.clone(), t.event.to_owned(), t.count.to_string()]);
        s += &table(["POD", "EVENT", "COUNT"], rows);
        s += "\nHandshake timeouts (SYNs retransmitted to one destination; from samples)\n";
        let rows = r.handshake_timeouts.iter().map(|h| {
            [
                h.pod.clone(),
                format!("{}:{}", h.daddr, h.dport),
                h.syn_retransmits.to_string(),
                h.rst_received.to_string(),
            ]
        });
        s += &table(["POD", "DESTINATION", "SYN RETRANSMITS", "RSTS RECEIVED"], rows);
    }
    if let Some(sn) = &r.softnet {
        let knob = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
        s += &format!(
            "\nSoftnet per CPU (exact; netdev_budget {}, netdev_budget_usecs {}, netdev_max_backlog {})\n",
            knob(sn.knobs.netdev_budget),
            knob(sn.knobs.netdev_budget_usecs),
            knob(sn.knobs.netdev_max_backlog)
        );
        let rows = sn.cpus.iter().map(|c| {
            let coverage = if c.runs == 0 {
                "-".into()
            } else {
                format!("{:.0}%", 100.0 * c.covered_runs as f64 / c.runs as f64)
            };
            [
                c.cpu.to_string(),
                c.runs.to_string(),
                c.packets.to_string(),
                format!("{:.1}", c.busy_ns as f64 / 1e6),
                c.squeezes.to_string(),
                coverage,
            ]
        });
        s += &table(
            ["CPU", "NET_RX RUNS", "PACKETS", "BUSY MS", "SQUEEZED", "SQUEEZE COVERAGE"],
            rows,
        );
        if sn.max_squeezed_packets > 0 {
            s += &format!(
                "  largest squeezed run: {} packets; longest: {:.0} us\n",
                sn.max_squeezed_packets, sn.max_squeezed_us
            );
        }
        s += "Backlog overflow drops by pod (exact; freed where the CPU's backlog was full)\n";
        let rows = sn.backlog_drops.iter().map(|d| [d.pod.clone(), d.count.to_string()]);
        s += &table(["POD", "DROPS"], rows);
    }
    if has(Family::Bursts) {
        s += &format!("\nMicrobursts ({} found; the largest)\n", r.burst_count);
        let rows = r.bursts.iter().map(|b| {
            [
                b.time.get(11..26).unwrap_or(&b.time).to_owned(),
                b.pod.clone(),
                b.interface.clone(),
                b.packets.to_string(),
                format!("{:.0}", b.duration_us),
                format!("{:.0}", b.peak_pps),
            ]
        });
        s += &table(["START", "POD", "INTERFACE", "PACKETS", "US", "PEAK PPS"], rows);
    }
    if has(Family::Conntrack) {
        s += "\nConntrack by pod (counters of the pod's own table; drops split by where they were freed)\n";
        let rows = r.conntrack.iter().map(|c| {
            let fill = if c.max > 0 {
                format!(
                    "{}/{} ({:.0}%)",
                    c.peak_count,
                    c.max,
                    100.0 * c.peak_count as f64 / c.max as f64
                )
            } else {
                "-".into()
            };
            [
                c.pod.clone(),
                c.table_full_drops.to_string(),
                c.insert_failed.to_string(),
                c.early_drop.to_string(),
                c.verdict_drops.to_string(),
                c.rule_drops.to_string(),
                fill,
                c.table_full_messages.to_string(),
            ]
        });
        s += &table(
            [
                "POD",
                "TABLE FULL",
                "INSERT FAILED",
                "EARLY DROP",
                "VERDICT DROPS",
                "RULE DROPS",
                "PEAK FILL",
                "KERNEL MSGS",
            ],
            rows,
        );
    }
    if has(Family::Ports) {
        s += "\nPort and bind errors by pod (exact kernel counts)\n";
        let rows = r
            .ports
            .iter()
            .map(|p| [p.pod.clone(), p.op.to_owned(), p.errno.clone(), p.count.to_string()]);
        s += &table(["POD", "CALL", "ERROR", "COUNT"], rows);
        s += "\nWho and where (from samples)\n";
        let rows = r.port_errors.iter().map(|p| {
            let at = match (p.addr, p.port) {
                (Some(a), Some(port)) => format!("{a}:{port}"),
                _ => "?".into(),
            };
            [
                p.pod.clone(),
                p.comm.clone(),
                format!("{} {at}", p.op),
                p.errno.clone(),
                p.count.to_string(),
                p.ip_local_port_range.clone().unwrap_or_else(|| "?".into()),
                p.time_wait_to_destination.map_or("-".into(), |n| n.to_string()),
            ]
        });
        s += &table(
            ["POD", "PROCESS", "CALL", "ERROR", "COUNT", "PORT RANGE", "TIME_WAIT TO DEST"],
            rows,
        );
    }
    let h = &r.health;
    s += &format!(
        "\nLost samples: {} (no room in the ring buffer; the exact counts above are unaffected)\n",
        h.lost_samples
    );
    if h.counter_overflow > 0 {
        s += &format!(
            "WARNING: {} events found their counter map full and are missing from the tables\n",
            h.counter_overflow
        );
    }
    if h.read_errors > 0 {
        s += &format!("Kernel reads that failed: {} (some samples lack fields)\n", h.read_errors);
    }
    s
}

/// Left-aligned columns, numbers right-aligned; "  none" for no rows.
fn table<const N: usize>(head: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = rows.collect();
    if rows.is_empty() {
        return "  none\n".into();
    }
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            let numeric = !cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit());
            if numeric {
                l += &format!(" {cell:>w$}", w = widths[i]);
            } else {
                l += &format!(" {cell:<w$}", w = widths[i]);
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut out = line(head.to_vec());
    for row in &rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}
