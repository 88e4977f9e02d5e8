//! The kernel's own counters: what netprobe's counts are checked against in every finding's
//! evidence. Per netns: SNMP/TcpExt counters and conntrack statistics; per CPU: softnet_stat.

use std::{collections::HashMap, fs};

use crate::families::conntrack::stats::Stats;

/// One netns's counters, read from inside it (docs/json.md, `kernel`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetnsCounters {
    /// Tcp: OutSegs, RetransSegs, OutRsts.
    pub tcp_out_segs: u64,
    pub tcp_retrans_segs: u64,
    pub tcp_out_rsts: u64,
    /// Tcp EstabResets: connections closed straight from ESTABLISHED or CLOSE_WAIT (a reset
    /// received, or an abort). Absent (0) in recordings made before it was kept.
    #[serde(default)]
    pub tcp_estab_resets: u64,
    /// TcpExt: TCPSynRetrans, ListenOverflows, ListenDrops.
    pub tcp_syn_retrans: u64,
    pub listen_overflows: u64,
    pub listen_drops: u64,
    /// Udp and Udp6 NoPorts: datagrams to a port nobody listens on.
    pub udp_no_ports: u64,
    /// Ip and Ip6 InReceives + OutRequests: the pod's IP traffic, which drops are weighed
    /// against. Absent (0) in recordings made before it was kept.
    #[serde(default)]
    pub ip_packets: u64,
    /// None when conntrack is not loaded in this netns.
    pub conntrack: Option<Stats>,
}

impl NetnsCounters {
    /// This thread's netns's counters.
    pub fn read() -> Self {
        // thread-self: /proc/net follows the thread-group leader's netns, not this thread's.
        let read = |f: &str| fs::read_to_string(format!("/proc/thread-self/net/{f}"));
        let mut mib = HashMap::new();
        for text in [read("snmp"), read("netstat")].into_iter().flatten() {
            parse_mib(&text, &mut mib);
        }
        let snmp6 = read("snmp6").unwrap_or_default();
        let udp6 = parse_snmp6(&snmp6, "Udp6NoPorts");
        let ip6 = parse_snmp6(&snmp6, "Ip6InReceives") + parse_snmp6(&snmp6, "Ip6OutRequests");
        let get = |k: &str| mib.get(k).copied().unwrap_or(0);
        Self {
            tcp_out_segs: get("Tcp:OutSegs"),
            tcp_retrans_segs: get("Tcp:RetransSegs"),
            tcp_out_rsts: get("Tcp:OutRsts"),
            tcp_estab_resets: get("Tcp:EstabResets"),
            tcp_syn_retrans: get("TcpExt:TCPSynRetrans"),
            listen_overflows: get("TcpExt:ListenOverflows"),
            listen_drops: get("TcpExt:ListenDrops"),
            udp_no_ports: get("Udp:NoPorts") + udp6,
            ip_packets: get("Ip:InReceives") + get("Ip:OutRequests") + ip6,
            conntrack: Stats::read(),
        }
    }
}

/// One CPU's line of /proc/net/softnet_stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SoftnetStat {
    pub cpu: u32,
    pub processed: u64,
    /// Packets dropped because this CPU's backlog was full.
    pub dropped: u64,
    pub time_squeeze: u64,
}

impl SoftnetStat {
    pub fn read() -> Vec<Self> {
        fs::read_to_string("/proc/net/softnet_stat").map(|t| parse_softnet(&t)).unwrap_or_default()
    }
}

/// "Proto: names" / "Proto: values" line pairs into "Proto:Name" -> value.
fn parse_mib(text: &str, out: &mut HashMap<String, u64>) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let mut names = names.split_whitespace();
        let Some(proto) = names.next() else { continue };
        for (name, value) in names.zip(values.split_whitespace().skip(1)) {
            if let Ok(v) = value.parse() {
                out.insert(format!("{proto}{name}"), v);
            }
        }
    }
}

fn parse_snmp6(text: &str, field: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(name, _)| *name == field)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Hex columns: processed, dropped, time_squeeze, ...; the CPU id is column 13 since 5.10,
/// before which lines are per online CPU in order.
fn parse_softnet(text: &str) -> Vec<SoftnetStat> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let cols: Vec<u64> = line
                .split_whitespace()
                .map(|c| u64::from_str_radix(c, 16))
                .collect::<Result<_, _>>()
                .ok()?;
            Some(SoftnetStat {
                cpu: cols.get(12).map_or(i as u32, |c| *c as u32),
                processed: *cols.first()?,
                dropped: *cols.get(1)?,
                time_squeeze: *cols.get(2)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mib_pairs_become_proto_name() {
        let mut m = HashMap::new();
        parse_mib(
            "Tcp: RtoAlgorithm OutSegs RetransSegs\nTcp: 1 500 7\nUdp: InDatagrams NoPorts\nUdp: 3 25\n",
            &mut m,
        );
        assert_eq!(m["Tcp:OutSegs"], 500);
        assert_eq!(m["Tcp:RetransSegs"], 7);
        assert_eq!(m["Udp:NoPorts"], 25);
        assert_eq!(parse_snmp6("Udp6InDatagrams 4\nUdp6NoPorts   25\n", "Udp6NoPorts"), 25);
    }

    #[test]
    fn softnet_stat_columns() {
        let t = "0000aaaa 00000002 00000003 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
                 00000010 00000000 00004e97 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000\n";
        let s = parse_softnet(t);
        assert_eq!(s[0], SoftnetStat { cpu: 0, processed: 0xaaaa, dropped: 2, time_squeeze: 3 });
        assert_eq!(s[1].cpu, 1);
        assert_eq!(s[1].time_squeeze, 20119);
    }
}
