//! Ring-buffer records to domain events. The wire struct stays in netprobe-common; what users
//! and scripts see is [`DropSample`], whose JSON is documented in docs/json.md.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netprobe_common::{
    drops::{DropEvent, ETH_P_IP, ETH_P_IPV6},
    event::{kind, EventHeader},
};

use crate::{clock::Clock, kallsyms::Kallsyms, pods::PodIndex, reasons::Reasons};

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
    /// "ipv4", "ipv6", or null when the packet did not parse.
    pub l3: Option<&'static str>,
    /// "tcp", "udp", "icmp", "icmpv6", the protocol number otherwise; null when not parsed.
    pub proto: Option<String>,
    pub saddr: Option<IpAddr>,
    pub daddr: Option<IpAddr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

/// What the decoder needs to turn numbers into names.
pub struct Names<'a> {
    pub reasons: &'a Reasons,
    pub kallsyms: &'a Kallsyms,
    pub pods: &'a PodIndex,
    pub clock: &'a Clock,
}

/// The record's header, if the buffer is long enough to hold one.
pub fn header(bytes: &[u8]) -> Option<EventHeader> {
    read::<EventHeader>(bytes)
}

/// Decodes a DROP record; None for a record of another kind or a short one.
pub fn decode(bytes: &[u8], names: &Names<'_>) -> Option<DropSample> {
    if header(bytes)?.kind != kind::DROP {
        return None;
    }
    let ev = read::<DropEvent>(bytes)?;
    let (l3, saddr, daddr) = match ev.l3_proto {
        ETH_P_IP => (Some("ipv4"), Some(v4(&ev.saddr)), Some(v4(&ev.daddr))),
        ETH_P_IPV6 => (Some("ipv6"), Some(v6(&ev.saddr)), Some(v6(&ev.daddr))),
        _ => (None, None, None),
    };
    let ports = l3.is_some() && matches!(ev.l4_proto, 6 | 17);
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
        location_addr: format!("{:#x}", ev.location),
        l3,
        proto: l3.map(|l3| proto_name(ev.l4_proto, l3 == "ipv6")),
        saddr,
        daddr,
        sport: ports.then_some(ev.sport),
        dport: ports.then_some(ev.dport),
    })
}

fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>())
        // SAFETY: length checked; T is a repr(C) integer-only wire type, read unaligned.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn v4(a: &[u8; 16]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
}

fn v6(a: &[u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(*a))
}

fn proto_name(p: u8, v6: bool) -> String {
    match (p, v6) {
        (6, _) => "tcp".into(),
        (17, _) => "udp".into(),
        (1, false) => "icmp".into(),
        (58, true) => "icmpv6".into(),
        (n, _) => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::{Pod, Resolver, Source};

    struct One;
    impl Resolver for One {
        fn pods(&self) -> Vec<Pod> {
            vec![Pod { netns: 4026532999, name: "pod-b".into(), source: Source::NamedNetns }]
        }
    }

    fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a repr(C) integer-only struct.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn names_fixture() -> (Reasons, Kallsyms, PodIndex, Clock) {
        let reasons = crate::reasons::tests::fixture_reasons();
        let kallsyms = Kallsyms::parse("ffffffff81b00000 T tcp_v4_rcv\n");
        (
            reasons,
            kallsyms,
            PodIndex::new(vec![Box::new(One)]),
            Clock::fixed(0, 1_700_000_000_000_000_000),
        )
    }

    fn tcp_drop() -> DropEvent {
        let mut ev = DropEvent {
            header: EventHeader { kind: kind::DROP, _pad: 0, cpu: 1, ts_ns: 1_500_000 },
            netns: 4026532999,
            ifindex: 3,
            reason: 3,
            l3_proto: ETH_P_IP,
            l4_proto: 6,
            location: 0xffffffff81b001c4,
            sport: 40000,
            dport: 9,
            ..Default::default()
        };
        ev.saddr[..4].copy_from_slice(&[10, 99, 0, 2]);
        ev.daddr[..4].copy_from_slice(&[10, 99, 0, 3]);
        ev
    }

    #[test]
    fn decodes_a_tcp_drop() {
        let (reasons, kallsyms, pods, clock) = names_fixture();
        let names = Names { reasons: &reasons, kallsyms: &kallsyms, pods: &pods, clock: &clock };
        let s = decode(&bytes_of(&tcp_drop()), &names).expect("decodes");
        assert_eq!(s.pod, "pod-b");
        assert_eq!(s.reason, "NO_SOCKET");
        assert_eq!(s.location, "tcp_v4_rcv+0x1c4");
        assert_eq!(s.proto.as_deref(), Some("tcp"));
        assert_eq!(s.saddr, Some("10.99.0.2".parse().unwrap()));
        assert_eq!(s.daddr, Some("10.99.0.3".parse().unwrap()));
        assert_eq!((s.sport, s.dport), (Some(40000), Some(9)));
        assert_eq!(s.time, "2023-11-14T22:13:20.001500Z");
    }

    #[test]
    fn unparsed_packets_have_no_tuple() {
        let (reasons, kallsyms, pods, clock) = names_fixture();
        let names = Names { reasons: &reasons, kallsyms: &kallsyms, pods: &pods, clock: &clock };
        let ev = DropEvent { l3_proto: 0, reason: 999, ..tcp_drop() };
        let s = decode(&bytes_of(&ev), &names).expect("decodes");
        assert_eq!((s.l3, s.proto, s.saddr, s.sport), (None, None, None, None));
        assert_eq!(s.reason, "999");
    }

    #[test]
    fn short_or_foreign_records_are_refused() {
        let (reasons, kallsyms, pods, clock) = names_fixture();
        let names = Names { reasons: &reasons, kallsyms: &kallsyms, pods: &pods, clock: &clock };
        let bytes = bytes_of(&tcp_drop());
        assert!(decode(&bytes[..bytes.len() - 1], &names).is_none());
        let other =
            DropEvent { header: EventHeader { kind: 999, ..tcp_drop().header }, ..tcp_drop() };
        assert!(decode(&bytes_of(&other), &names).is_none());
    }
}
