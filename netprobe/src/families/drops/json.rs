//! The drop record of `watch --format json`, written field by field: at 100k drops/s the
//! derived serialisation (the `type` tag, the flattened flow, every key escaped) was a third
//! of watch's CPU. The bytes are those of `Event::Drop` through serde (docs/json.md); the
//! tests hold them equal.

use super::DropSample;
use crate::json::{field, ip, plain};

impl DropSample {
    /// `{"type":"drop",...}`, as serde_json writes `Event::Drop(self)`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"type":"drop""#);
        plain(out, "time", Some(&self.time));
        field(out, "ts_ns", &self.ts_ns);
        field(out, "cpu", &self.cpu);
        field(out, "pod", &self.pod);
        field(out, "netns", &self.netns);
        field(out, "ifindex", &self.ifindex);
        field(out, "reason", &self.reason);
        field(out, "reason_code", &self.reason_code);
        field(out, "location", &self.location);
        plain(out, "location_addr", Some(&self.location_addr));
        let f = &self.flow;
        plain(out, "l3", f.l3.as_deref());
        plain(out, "proto", f.proto.as_deref());
        ip(out, "saddr", f.saddr);
        ip(out, "daddr", f.daddr);
        field(out, "sport", &f.sport);
        field(out, "dport", &f.dport);
        out.push(b'}');
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::{event::Event, flow::FlowView};

    pub fn udp() -> DropSample {
        DropSample {
            time: "2026-12-01T22:55:36.123456Z".into(),
            ts_ns: 18_446_744_073_709_551_615,
            cpu: 1,
            pod: "pod-b".into(),
            netns: 4026532999,
            ifindex: 3,
            reason: crate::btf::fixture::REASONS[0].0.into(),
            reason_code: 3,
            location: "__udp4_lib_rcv+0x8f6".into(),
            location_addr: "0xffffffff81b001c4".into(),
            flow: FlowView {
                l3: Some("ipv4".into()),
                proto: Some("udp".into()),
                saddr: Some("10.99.0.10".parse().unwrap()),
                daddr: Some("fd00::b".parse().unwrap()),
                sport: Some(40000),
                dport: Some(7999),
            },
        }
    }

    fn assert_as_serde(s: DropSample) {
        let mut ours = Vec::new();
        s.write_json(&mut ours);
        let serde = serde_json::to_vec(&Event::Drop(s)).unwrap();
        assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(serde).unwrap());
    }

    #[test]
    fn writes_what_serde_writes() {
        assert_as_serde(udp());
    }

    #[test]
    fn addresses_are_as_serde_writes_them() {
        for (s, d) in
            [("0.0.0.0", "255.255.255.255"), ("10.9.100.1", "::"), ("::ffff:1.2.3.4", "fe80::1")]
        {
            let flow = FlowView { saddr: s.parse().ok(), daddr: d.parse().ok(), ..udp().flow };
            assert_as_serde(DropSample { flow, ..udp() });
        }
    }

    #[test]
    fn unparsed_flows_are_nulls() {
        assert_as_serde(DropSample { flow: FlowView::default(), ..udp() });
    }

    #[test]
    fn values_are_escaped() {
        assert_as_serde(DropSample { pod: "a\"b\\c\u{1}é/d".into(), ..udp() });
    }
}
