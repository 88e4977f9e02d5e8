//! Ring-buffer records to domain events. The wire struct stays in netprobe-common; what users
//! and scripts see is [`DropSample`], whose JSON is documented in docs/json.md.

use netprobe_common::drops::DropEvent;

use crate::{flow::FlowView, names::Names, wire};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DropSample {
    /// Wall-clock time, RFC 3339 UTC with microseconds.
    pub time: String,
    /// CLOCK_MONOTONIC nanoseconds, for ordering and deltas.
    pub ts_ns: u64,
    pub cpu: u32,
    pub pod: String,
    pub netns: u32,
    pub ifindex: u32,
    pub reason: String,
    pub reason_code: u32,
    pub location: String,
    pub location_addr: String,
    #[serde(flatten)]
    pub flow: FlowView,
}

/// Decodes a DROP record; None for a short one.
pub fn decode(bytes: &[u8], names: &Names) -> Option<DropSample> {
    let ev = wire::read::<DropEvent>(bytes)?;
    Some(DropSample {
        time: names.clock.wall(ev.header.ts_ns),
        ts_ns: ev.header.ts_ns,
        cpu: ev.header.cpu,
        pod: names.pods.name(ev.netns),
        netns: ev.netns,
        ifindex: ev.ifindex,
        reason: names.reasons.name(ev.reason),
        reason_code: ev.reason,
        location: names.kallsyms.symbolize(ev.location),
        location_addr: hex(ev.location),
        flow: FlowView::from(&ev.flow),
    })
}

/// `format!("{:#x}")` without the formatting machinery, which was a tenth of watch's CPU.
fn hex(v: u64) -> String {
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
    let mut s = String::with_capacity(2 + digits as usize);
    s.push_str("0x");
    for i in (0..digits).rev() {
        s.push(char::from_digit(((v >> (4 * i)) & 0xf) as u32, 16).expect("a hex digit"));
    }
    s
}

impl crate::event::Sample for DropSample {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: Some(self.cpu),
            pod: &self.pod,
            what: self.reason.as_str(),
            flow: self.flow.text(),
            tail: format!("at {}", self.location),
        }
    }
}

#[cfg(test)]
mod tests {
    use netprobe_common::event::{kind, EventHeader, Flow, AF_INET};

    use super::*;
    use crate::{btf::fixture, event::Event, names::tests::fixture, wire::tests::bytes_of};

    fn tcp_drop() -> DropEvent {
        let mut flow =
            Flow { family: AF_INET, proto: 6, sport: 40000, dport: 9, ..Default::default() };
        flow.saddr[..4].copy_from_slice(&[10, 99, 0, 2]);
        flow.daddr[..4].copy_from_slice(&[10, 99, 0, 3]);
        DropEvent {
            header: EventHeader { kind: kind::DROP, _pad: 0, cpu: 1, ts_ns: 1_500_000 },
            netns: 4026532999,
            ifindex: 3,
            reason: 3,
            _pad: 0,
            location: 0xffffffff81b001c4,
            flow,
        }
    }

    #[test]
    fn decodes_a_tcp_drop() {
        let names = fixture();
        let s = decode(&bytes_of(&tcp_drop()), &names).expect("decodes");
        assert_eq!(s.pod, "pod-b");
        // The fixture's enumerator for the event's reason value, without the kernel's prefix.
        let (enumerator, _) =
            fixture::REASONS.iter().find(|(_, v)| *v == tcp_drop().reason).unwrap();
        assert_eq!(Some(s.reason.as_str()), enumerator.strip_prefix("SKB_DROP_REASON_"));
        assert_eq!(s.location, "tcp_v4_rcv+0x1c4");
        assert_eq!(s.flow.proto.as_deref(), Some("tcp"));
        assert_eq!(s.flow.saddr, Some("10.99.0.2".parse().unwrap()));
        assert_eq!(s.flow.daddr, Some("10.99.0.3".parse().unwrap()));
        assert_eq!((s.flow.sport, s.flow.dport), (Some(40000), Some(9)));
        assert_eq!(s.time, "2023-11-14T22:13:20.001500Z");
    }

    #[test]
    fn unparsed_packets_have_no_tuple() {
        let names = fixture();
        let ev = DropEvent {
            flow: Flow { proto: 6, sport: 1, ..Flow::default() },
            reason: 999,
            ..tcp_drop()
        };
        let s = decode(&bytes_of(&ev), &names).expect("decodes");
        assert_eq!(s.flow, FlowView::default());
        assert_eq!(s.reason, "999");
    }

    #[test]
    fn addresses_are_hex() {
        for v in [0, 1, 0xf, 0x10, 0xffffffff81b001c4, u64::MAX] {
            assert_eq!(hex(v), format!("{v:#x}"));
        }
    }

    #[test]
    fn short_records_are_refused() {
        let bytes = bytes_of(&tcp_drop());
        assert!(decode(&bytes[..bytes.len() - 1], &fixture()).is_none());
    }

    #[test]
    fn records_are_dispatched_on_their_kind() {
        let names = fixture();
        assert!(matches!(Event::decode(&bytes_of(&tcp_drop()), &names), Some(Event::Drop(_))));
        let other =
            DropEvent { header: EventHeader { kind: 999, ..tcp_drop().header }, ..tcp_drop() };
        assert!(Event::decode(&bytes_of(&other), &names).is_none());
    }
}
