//! Port records to domain events (docs/json.md).

use std::net::{IpAddr, SocketAddr};

use netprobe_common::{event::Flow, ports::PortEvent};

use super::PortOp;
use crate::{flow::FlowView, names::Names, wire};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PortSample {
    pub time: String,
    pub ts_ns: u64,
    pub cpu: u32,
    pub pod: String,
    pub netns: u32,
    pub op: PortOp,
    /// `EADDRNOTAVAIL` or `EADDRINUSE`.
    pub errno: String,
    pub errno_code: u32,
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    /// connect(): the destination; bind(): the address asked for, as the source.
    #[serde(flatten)]
    pub flow: FlowView,
    /// The pod's net.ipv4.ip_local_port_range as the kernel had it when the call failed.
    pub ip_local_port_range: Option<String>,
    /// The socket's own address and port when the call failed (port 0: none bound); None
    /// when the kernel could not read the socket.
    pub bound_addr: Option<IpAddr>,
    pub bound_port: Option<u16>,
    /// bind() at the function tiers: the socket holding the port the kernel's conflict check
    /// found taken, as `STATE addr:port` (`LISTEN 10.0.0.5:8080`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// The pod's TIME_WAIT sockets to this destination (connect only), polled from userspace.
    pub time_wait_to_destination: Option<u32>,
    /// When that poll ran, in ms after the error (negative: a read from before it).
    pub time_wait_age_ms: Option<i64>,
}

pub fn decode(bytes: &[u8], names: &Names) -> Option<PortSample> {
    let ev = wire::read::<PortEvent>(bytes)?;
    let comm_len = ev.comm.iter().position(|&b| b == 0).unwrap_or(ev.comm.len());
    Some(PortSample {
        time: names.clock.wall(ev.header.ts_ns),
        ts_ns: ev.header.ts_ns,
        cpu: ev.header.cpu,
        pod: names.pods.name(ev.netns),
        netns: ev.netns,
        op: PortOp::from_wire(ev.op),
        errno: super::errno_name(ev.errno),
        errno_code: ev.errno,
        pid: ev.pid,
        tgid: ev.tgid,
        comm: String::from_utf8_lossy(&ev.comm[..comm_len]).into_owned(),
        flow: FlowView::from(&ev.flow),
        ip_local_port_range: (ev.port_hi != 0).then(|| format!("{}-{}", ev.port_lo, ev.port_hi)),
        bound_addr: bound(&ev).and_then(|f| FlowView::from(&f).saddr),
        bound_port: bound(&ev).map(|f| f.sport),
        held_by: held_by(&ev, names),
        time_wait_to_destination: None,
        time_wait_age_ms: None,
    })
}

fn held_by(ev: &PortEvent, names: &Names) -> Option<String> {
    let h = &ev.holder;
    let flow = Flow { family: h.family, saddr: h.addr, ..Flow::default() };
    let addr = FlowView::from(&flow).saddr?;
    Some(format!("{} {}", names.tcp_states.name(h.state), SocketAddr::new(addr, h.port)))
}

/// The socket's own end as a flow's source, None when the kernel could not read the socket.
fn bound(ev: &PortEvent) -> Option<Flow> {
    (ev.bound_family != 0).then(|| Flow {
        family: ev.bound_family,
        proto: 0,
        sport: ev.bound_port,
        saddr: ev.bound_addr,
        ..Flow::default()
    })
}

impl crate::event::Sample for PortSample {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: Some(self.cpu),
            pod: &self.pod,
            what: self.errno.as_str(),
            flow: format!("{} {}", self.op, self.flow.text()),
            tail: context(self),
        }
    }
}

/// `by curl/4242, bound 0.0.0.0:0, port range 40000-40009, 10 in TIME_WAIT to it (+40 ms)`.
fn context(p: &PortSample) -> String {
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
