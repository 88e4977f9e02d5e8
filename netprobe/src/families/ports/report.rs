//! Ports in the report: exact connect()/bind() errors per pod, and from samples who failed
//! towards where, with the range, the bound port and the TIME_WAIT count at the error.

use std::{collections::HashMap, net::IpAddr};

use super::PortOp;
use crate::{
    event::Event,
    family::Family,
    frames::{Frame, Snapshot},
    reasons::Reasons,
    report::{
        section::{self, Context, Section},
        text::table,
        timeline::{Add, Metric, Timeline},
        Report,
    },
};

/// Sites listed.
const TOP: usize = 10;

#[derive(Debug, serde::Serialize)]
pub struct PortCount {
    pub pod: String,
    pub netns: u32,
    pub op: String,
    pub errno: String,
    pub count: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PortErrorSite {
    pub pod: String,
    pub netns: u32,
    pub comm: String,
    pub op: PortOp,
    pub errno: String,
    /// connect(): the destination; bind(): the address asked for.
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub count: u64,
    /// At the last sample: the range and the socket's own end as the kernel had them at the
    /// error, and the polled TIME_WAIT count with how long after the error it was read.
    pub ip_local_port_range: Option<String>,
    pub bound_addr: Option<IpAddr>,
    pub bound_port: Option<u16>,
    pub time_wait_to_destination: Option<u32>,
    pub time_wait_age_ms: Option<i64>,
    /// bind() at the function tiers: the socket holding the port (`STATE addr:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct Ports {
    /// Exact, from kernel counters.
    pub ports: Vec<PortCount>,
    /// From samples: who failed, towards where, with the pod's context.
    pub port_errors: Vec<PortErrorSite>,
}

/// (netns, comm, op, errno, addr, port) of a port error site.
type SiteKey = (u32, String, PortOp, String, Option<IpAddr>, Option<u16>);

#[derive(Default)]
pub struct Part {
    sites: HashMap<SiteKey, PortErrorSite>,
    samples: u64,
}

impl section::Part for Part {
    type Section = Ports;

    fn totals(s: &Snapshot, _: &Reasons, add: &mut Add) {
        super::timeline::totals(s, add);
    }

    fn frame(&mut self, frame: &Frame, _: &Timeline) {
        let Frame::Event(Event::Port(p)) = frame else { return };
        self.samples += 1;
        let (addr, port) = match p.op {
            PortOp::Connect => (p.flow.daddr, p.flow.dport),
            _ => (p.flow.saddr, p.flow.sport),
        };
        let key = (p.netns, p.comm.clone(), p.op, p.errno.clone(), addr, port);
        let site = self.sites.entry(key).or_insert_with(|| PortErrorSite {
            pod: p.pod.clone(),
            netns: p.netns,
            comm: p.comm.clone(),
            op: p.op,
            errno: p.errno.clone(),
            addr,
            port,
            count: 0,
            ip_local_port_range: None,
            bound_addr: None,
            bound_port: None,
            time_wait_to_destination: None,
            time_wait_age_ms: None,
            held_by: None,
        });
        site.count += 1;
        site.ip_local_port_range.clone_from(&p.ip_local_port_range);
        (site.bound_addr, site.bound_port) = (p.bound_addr, p.bound_port);
        site.time_wait_to_destination = p.time_wait_to_destination;
        site.time_wait_age_ms = p.time_wait_age_ms;
        site.held_by.clone_from(&p.held_by);
    }

    fn samples(&self) -> u64 {
        self.samples
    }

    fn section(&self, c: &Context) -> Ports {
        let mut ports: Vec<PortCount> = c
            .timeline
            .totals(Metric::PORT_ERRORS)
            .filter(|(s, ..)| c.keep(*s))
            .map(|(s, label, count)| {
                let (op, errno) = label.split_once(' ').unwrap_or((label, ""));
                PortCount {
                    pod: c.name(Context::id_of(s)),
                    netns: c.inode(Context::id_of(s)),
                    op: op.into(),
                    errno: errno.into(),
                    count,
                }
            })
            .collect();
        ports.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
        let mut port_errors: Vec<PortErrorSite> =
            self.sites.values().filter(|p| c.in_scope(p.netns)).cloned().collect();
        port_errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.pod.cmp(&b.pod)));
        port_errors.truncate(TOP);
        Ports { ports, port_errors }
    }
}

impl Section for Ports {
    const TEXT: u8 = 70;

    fn text(&self, r: &Report) -> String {
        if !r.ran(Family::Ports) {
            return String::new();
        }
        let mut s = "\nPort and bind errors by pod (exact kernel counts)\n".to_owned();
        let rows = self
            .ports
            .iter()
            .map(|p| [p.pod.clone(), p.op.to_owned(), p.errno.clone(), p.count.to_string()]);
        s += &table(["POD", "CALL", "ERROR", "COUNT"], rows);
        s += "\nWho and where (from samples)\n";
        let rows = self.port_errors.iter().map(|p| {
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
        s
    }

    fn pods(&self) -> Vec<&str> {
        self.port_errors.iter().map(|p| p.pod.as_str()).collect()
    }
}
