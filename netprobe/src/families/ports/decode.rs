//! Port records to domain events (docs/json.md).

use netprobe_common::ports::PortEvent;

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
    /// The pod's net.ipv4.ip_local_port_range, when its netns could be entered.
    pub ip_local_port_range: Option<String>,
    /// The pod's TIME_WAIT sockets to this destination (connect only).
    pub time_wait_to_destination: Option<u32>,
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
        ip_local_port_range: None,
        time_wait_to_destination: None,
    })
}
