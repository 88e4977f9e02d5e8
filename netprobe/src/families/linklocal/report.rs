//! The report's linklocal section: exact counts per pod and destination, and the node's
//! busiest second against the limit, from the timeline's per-second series.

use std::{fmt::Write, net::IpAddr};

use super::{parse_label, Destination, Direction};
use crate::{
    family::Family,
    frames::Snapshot,
    reasons::Reasons,
    report::{
        html,
        section::{self, Context, Section},
        text::table,
        timeline::{Add, Metric, Subject, Timeline},
        Report,
    },
};

/// The report's `linklocal`: present when the family ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkLocal {
    pub linklocal: Option<LinkLocalReport>,
}

/// The linklocal section (docs/json.md, `linklocal`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkLocalReport {
    /// Packets per second the node may exchange with link-local services (`--linklocal-pps-limit`).
    pub pps_limit: u32,
    /// The cluster DNS IPs counted (`--dns-ip`).
    pub dns_ips: Vec<IpAddr>,
    /// The node's busiest second: link-local packets of every pod, both directions.
    pub peak_pps: u64,
    /// When that second ended, in seconds from the report's start; absent without traffic.
    pub peak_at_s: Option<f64>,
    /// The pods' link-local packets in that second, most first.
    pub peak_pods: Vec<PodPeak>,
    /// Exact over the report, per pod, destination, direction, address and port; most first.
    pub rows: Vec<LinkLocalCount>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PodPeak {
    pub pod: String,
    pub netns: u32,
    /// Its link-local packets per second in the node's busiest second.
    pub pps: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkLocalCount {
    pub pod: String,
    pub netns: u32,
    pub destination: Destination,
    pub direction: Direction,
    pub proto: String,
    pub addr: IpAddr,
    pub port: u16,
    pub packets: u64,
    /// Its own busiest second.
    pub peak_pps: u64,
}

/// Per-second rates of a series: each interval's growth over its length, an interval shorter
/// than a second counted as a whole second (a short last interval must not inflate a few
/// packets into a rate).
fn per_second(tl: &Timeline, values: &[u64]) -> Vec<u64> {
    values.iter().enumerate().map(|(i, v)| rate(tl, i, *v)).collect()
}

/// `packets` of interval `i` per second.
fn rate(tl: &Timeline, i: usize, packets: u64) -> u64 {
    let start = if i == 0 { tl.start_ns } else { tl.ends_ns[i - 1] };
    let secs = (tl.ends_ns[i].saturating_sub(start) as f64 / 1e9).max(1.0);
    (packets as f64 / secs).round() as u64
}

#[derive(Default)]
pub struct Part;

impl section::Part for Part {
    type Section = LinkLocal;

    fn totals(s: &Snapshot, _: &Reasons, add: &mut Add) {
        super::timeline::totals(s, add);
    }

    fn section(&self, c: &Context) -> LinkLocal {
        let settings = c.header.linklocal.clone().unwrap_or_default();
        LinkLocal { linklocal: c.ran(Family::Linklocal).then(|| build(c, &settings)) }
    }
}

/// The section from the timeline. The node's total is every pod's, whatever the report is
/// limited to: the limit is the node's.
fn build(c: &Context, settings: &super::Settings) -> LinkLocalReport {
    let tl = c.timeline;
    let node = per_second(tl, &tl.sum(Metric::LINK_LOCAL, |_, _| true));
    let peak = node.iter().enumerate().max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)));
    let peak = peak.filter(|(_, v)| **v > 0).map(|(i, v)| (i, *v));
    let mut peak_pods = Vec::new();
    let mut rows = Vec::new();
    for (metric, destination) in [
        (Metric::LINK_LOCAL, Destination::LinkLocal),
        (Metric::CLUSTER_DNS, Destination::ClusterDns),
    ] {
        for ((m, subject, label), values) in &tl.series {
            let (true, Subject::Netns(id)) = (*m == metric, *subject) else { continue };
            let packets: u64 = values.iter().sum();
            let Some((direction, proto, addr, port)) = parse_label(label) else { continue };
            if packets == 0 || !c.keep(*subject) {
                continue;
            }
            let rates = per_second(tl, values);
            rows.push(LinkLocalCount {
                pod: c.name(id),
                netns: c.inode(id),
                destination,
                direction,
                proto,
                addr,
                port,
                packets,
                peak_pps: rates.iter().copied().max().unwrap_or(0),
            });
            if let (Some((i, _)), Destination::LinkLocal) = (peak, destination) {
                // Packets in that second first, as a rate once summed.
                match peak_pods.iter_mut().find(|p: &&mut PodPeak| p.netns == c.inode(id)) {
                    Some(p) => p.pps += values[i],
                    None => peak_pods.push(PodPeak {
                        pod: c.name(id),
                        netns: c.inode(id),
                        pps: values[i],
                    }),
                }
            }
        }
    }
    peak_pods.retain(|p| p.pps > 0);
    if let Some((i, _)) = peak {
        peak_pods.iter_mut().for_each(|p| p.pps = rate(tl, i, p.pps));
    }
    peak_pods.sort_by(|a, b| b.pps.cmp(&a.pps).then_with(|| a.pod.cmp(&b.pod)));
    rows.sort_by(|a, b| b.packets.cmp(&a.packets).then_with(|| a.pod.cmp(&b.pod)));
    LinkLocalReport {
        pps_limit: settings.pps_limit,
        dns_ips: settings.dns_ips.clone(),
        peak_pps: peak.map_or(0, |p| p.1),
        peak_at_s: peak.map(|(i, _)| tl.ends_ns[i].saturating_sub(tl.start_ns) as f64 / 1e9),
        peak_pods,
        rows,
    }
}

impl Section for LinkLocal {
    const TEXT: u8 = 65;
    const HTML: u8 = 35;

    fn text(&self, _: &Report) -> String {
        let Some(l) = &self.linklocal else { return String::new() };
        let share = l.peak_pps as f64 * 100.0 / f64::from(l.pps_limit);
        let at = l.peak_at_s.map_or(String::new(), |t| format!(" at {t:.0} s"));
        let mut s = format!(
            "\nLink-local and cluster DNS packets by pod (exact; the node's busiest second{at}: {} \
             link-local packets/s, {share:.0}% of the {}/s limit)\n",
            l.peak_pps, l.pps_limit
        );
        let rows = l.rows.iter().map(|r| {
            let to = match r.destination {
                Destination::LinkLocal => "link-local",
                Destination::ClusterDns => "cluster DNS",
            };
            [
                r.pod.clone(),
                to.to_owned(),
                r.direction.as_str().to_owned(),
                format!("{}/{}", std::net::SocketAddr::new(r.addr, r.port), r.proto),
                r.packets.to_string(),
                r.peak_pps.to_string(),
            ]
        });
        s += &table(["POD", "TO", "DIR", "SERVICE", "PACKETS", "PEAK PPS"], rows);
        s
    }

    /// Link-local packets per pod over time, against the limit.
    fn html(&self, r: &Report) -> String {
        let Some(l) = &self.linklocal else { return String::new() };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<h2>Link-local packets per pod (the node may send {}/s)</h2>",
            l.pps_limit
        );
        let ll = html::series(r, Metric::LINK_LOCAL);
        let by_pod = html::group(&ll, |v| v.pod.clone().unwrap_or_default());
        html::charts(&mut s, &r.timeline.t_s, &by_pod, "packets/s", "no link-local packets");
        s
    }

    fn pods(&self) -> Vec<&str> {
        self.linklocal.iter().flat_map(|l| l.rows.iter().map(|r| r.pod.as_str())).collect()
    }
}
