//! Patterns in TCP samples that counts alone do not show: open connections reset after a
//! quiet period (a NAT or load balancer that forgot them), and handshakes whose SYN-ACKs come
//! back from another address than the SYNs went to (a load balancer hairpin).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    time::Duration,
};

use super::TcpSample;

/// The default `--idle-reset-min`: below the 350 s after which AWS NAT gateways and NLBs
/// forget an idle flow (incident notes 02).
pub const IDLE_RESET_MIN: Duration = Duration::from_secs(300);

/// Resets on open connections to one destination (docs/json.md, `idle_resets`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleResets {
    pub pod: String,
    pub netns: u32,
    pub daddr: IpAddr,
    pub dport: u16,
    /// Resets received on ESTABLISHED or CLOSE_WAIT connections.
    pub resets: u64,
    /// Those that came after the connection was quiet for the threshold or longer.
    pub after_idle: u64,
    /// How long those had been quiet (since their last received segment), in ms.
    pub idle_ms: Option<Quantiles>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Quantiles {
    pub min: u32,
    pub p50: u32,
    pub p90: u32,
    pub max: u32,
}

impl Quantiles {
    fn of(sorted: &[u32]) -> Option<Self> {
        let at = |q: usize| sorted[(sorted.len() - 1) * q / 100];
        (!sorted.is_empty()).then(|| Self { min: at(0), p50: at(50), p90: at(90), max: at(100) })
    }
}

/// Connects whose SYN-ACKs came back from elsewhere (docs/json.md, `lb_hairpins`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hairpin {
    pub pod: String,
    pub netns: u32,
    /// Where the SYNs went: the load balancer.
    pub daddr: IpAddr,
    pub dport: u16,
    /// Where the SYN-ACKs came from: the backend itself.
    pub synack_saddr: IpAddr,
    pub synack_sport: u16,
    /// Local ports that saw both.
    pub ports: u64,
    /// SYNs retransmitted from those ports to `daddr:dport`.
    pub syn_retransmits: u64,
    /// SYN-ACKs from `synack_saddr:synack_sport` to those ports, answered with a reset.
    pub synacks_reset: u64,
}

/// The report's tables of these rows (text and HTML), as headings and cells.
pub const IDLE_HEAD: [&str; 5] =
    ["POD", "DESTINATION", "RESETS", "AFTER IDLE", "QUIET MIN/MEDIAN/MAX"];
pub const HAIRPIN_HEAD: [&str; 6] =
    ["POD", "CONNECTED TO", "SYN-ACKS FROM", "PORTS", "SYN RETRANSMITS", "SYN-ACKS RESET"];

impl IdleResets {
    pub fn cells(&self) -> [String; 5] {
        let s = |ms: u32| format!("{:.1}", f64::from(ms) / 1000.0);
        [
            self.pod.clone(),
            format!("{}:{}", self.daddr, self.dport),
            self.resets.to_string(),
            self.after_idle.to_string(),
            self.idle_ms
                .map_or("-".into(), |q| format!("{}/{}/{} s", s(q.min), s(q.p50), s(q.max))),
        ]
    }
}

impl Hairpin {
    pub fn cells(&self) -> [String; 6] {
        [
            self.pod.clone(),
            format!("{}:{}", self.daddr, self.dport),
            format!("{}:{}", self.synack_saddr, self.synack_sport),
            self.ports.to_string(),
            self.syn_retransmits.to_string(),
            self.synacks_reset.to_string(),
        ]
    }
}

/// (netns, pod, daddr, dport).
type Destination = (u32, String, IpAddr, u16);
/// (netns, local port).
type LocalPort = (u32, u16);

/// The samples these rows are made from.
#[derive(Default)]
pub struct Patterns {
    /// Resets on open connections, and the quiet ms of each one that had a time.
    resets: HashMap<Destination, (u64, Vec<u32>)>,
    /// (pod, daddr, dport) -> SYNs retransmitted there.
    connecting: HashMap<LocalPort, BTreeMap<(String, IpAddr, u16), u64>>,
    /// The SYN-ACK's (saddr, sport) -> resets answering it.
    answered: HashMap<LocalPort, BTreeMap<(IpAddr, u16), u64>>,
}

impl Patterns {
    pub fn sample(&mut self, t: &TcpSample) {
        let (Some(daddr), Some(dport), Some(sport)) = (t.flow.daddr, t.flow.dport, t.flow.sport)
        else {
            return;
        };
        if t.resets_open_connection() {
            // Without the kernel's HZ a reset has no time: counted, not timed.
            let row = self.resets.entry((t.netns, t.pod.clone(), daddr, dport)).or_default();
            row.0 += 1;
            row.1.extend(t.last_recv_ms);
        } else if t.event == super::TcpEventKind::SynRetransmit {
            let by_dest = self.connecting.entry((t.netns, sport)).or_default();
            *by_dest.entry((t.pod.clone(), daddr, dport)).or_default() += 1;
        } else if t.answers_synack() {
            let by_source = self.answered.entry((t.netns, sport)).or_default();
            *by_source.entry((daddr, dport)).or_default() += 1;
        }
    }

    /// Rows per destination, most resets after idle first; `idle` is the threshold.
    pub fn idle_resets(&self, idle: Duration, keep: impl Fn(u32) -> bool) -> Vec<IdleResets> {
        let min = idle.as_millis();
        let mut rows: Vec<IdleResets> = self
            .resets
            .iter()
            .filter(|((netns, ..), _)| keep(*netns))
            .map(|((netns, pod, daddr, dport), (resets, quiet))| {
                let mut long: Vec<u32> =
                    quiet.iter().copied().filter(|ms| u128::from(*ms) >= min).collect();
                long.sort_unstable();
                IdleResets {
                    pod: pod.clone(),
                    netns: *netns,
                    daddr: *daddr,
                    dport: *dport,
                    resets: *resets,
                    after_idle: long.len() as u64,
                    idle_ms: Quantiles::of(&long),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            (b.after_idle, b.resets).cmp(&(a.after_idle, a.resets)).then_with(|| a.pod.cmp(&b.pod))
        });
        rows
    }

    /// Local ports that retransmitted SYNs to one address and were sent SYN-ACKs from
    /// another, which were reset: grouped by (pod, SYN destination, SYN-ACK source).
    pub fn hairpins(&self, keep: impl Fn(u32) -> bool) -> Vec<Hairpin> {
        let mut rows: BTreeMap<(u32, String, IpAddr, u16, IpAddr, u16), Hairpin> = BTreeMap::new();
        for ((netns, port), sources) in &self.answered {
            let Some(dests) = self.connecting.get(&(*netns, *port)).filter(|_| keep(*netns)) else {
                continue;
            };
            for ((pod, daddr, dport), syns) in dests {
                for ((saddr, sport), resets) in sources {
                    if (saddr, sport) == (daddr, dport) {
                        continue; // the peer itself answered: not a hairpin
                    }
                    let key = (*netns, pod.clone(), *daddr, *dport, *saddr, *sport);
                    let row = rows.entry(key).or_insert_with(|| Hairpin {
                        pod: pod.clone(),
                        netns: *netns,
                        daddr: *daddr,
                        dport: *dport,
                        synack_saddr: *saddr,
                        synack_sport: *sport,
                        ports: 0,
                        syn_retransmits: 0,
                        synacks_reset: 0,
                    });
                    row.ports += 1;
                    row.syn_retransmits += syns;
                    row.synacks_reset += resets;
                }
            }
        }
        let mut rows: Vec<Hairpin> = rows.into_values().collect();
        rows.sort_by_key(|h| std::cmp::Reverse(h.synacks_reset));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{families::tcp::TcpEventKind, flow::FlowView};

    fn sample(event: TcpEventKind, state: Option<&str>, local: &str, remote: &str) -> TcpSample {
        let (l, r): (std::net::SocketAddr, std::net::SocketAddr) =
            (local.parse().unwrap(), remote.parse().unwrap());
        TcpSample {
            time: String::new(),
            ts_ns: 0,
            cpu: 0,
            pod: "pod-a".into(),
            netns: 1,
            event,
            state: state.map(str::to_owned),
            segs: 1,
            error: None,
            flow: FlowView {
                saddr: Some(l.ip()),
                daddr: Some(r.ip()),
                sport: Some(l.port()),
                dport: Some(r.port()),
                ..FlowView::default()
            },
            last_recv_ms: None,
            last_send_ms: None,
            answered: None,
        }
    }

    #[test]
    fn quiet_resets_above_the_threshold_make_the_distribution() {
        let mut p = Patterns::default();
        for quiet in [4100, 4000, 200, 4050] {
            let mut s = sample(
                TcpEventKind::RstReceived,
                Some("ESTABLISHED"),
                "10.0.0.1:40000",
                "10.1.0.1:80",
            );
            s.last_recv_ms = Some(quiet);
            p.sample(&s);
        }
        // A connecting socket's reset is a refused connection, not an idle one.
        p.sample(&sample(
            TcpEventKind::RstReceived,
            Some("SYN_SENT"),
            "10.0.0.1:40001",
            "10.1.0.1:80",
        ));
        let rows = p.idle_resets(Duration::from_secs(3), |_| true);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!((rows[0].resets, rows[0].after_idle), (4, 3));
        assert_eq!(rows[0].idle_ms, Some(Quantiles { min: 4000, p50: 4050, p90: 4050, max: 4100 }));
        assert_eq!(p.idle_resets(Duration::from_secs(300), |_| true)[0].after_idle, 0);
    }

    #[test]
    fn synacks_from_another_address_on_a_connecting_port_are_a_hairpin() {
        let mut p = Patterns::default();
        let vip = "10.2.0.100:80";
        for port in [40000, 40001] {
            let local = format!("10.0.0.1:{port}");
            for _ in 0..2 {
                p.sample(&sample(TcpEventKind::SynRetransmit, Some("SYN_SENT"), &local, vip));
            }
            for _ in 0..3 {
                let mut rst = sample(TcpEventKind::RstSent, None, &local, "10.0.0.2:5007");
                rst.answered = Some(super::super::decode::SYNACK.into());
                p.sample(&rst);
            }
        }
        // A closed port's reset (answering a SYN) on another port: no part of it.
        let mut rst = sample(TcpEventKind::RstSent, None, "10.0.0.1:8080", "10.0.0.3:5000");
        rst.answered = Some("SYN".into());
        p.sample(&rst);
        let rows = p.hairpins(|_| true);
        assert_eq!(rows.len(), 1, "{rows:?}");
        let h = &rows[0];
        assert_eq!((h.daddr.to_string(), h.dport), ("10.2.0.100".into(), 80));
        assert_eq!((h.synack_saddr.to_string(), h.synack_sport), ("10.0.0.2".into(), 5007));
        assert_eq!((h.ports, h.syn_retransmits, h.synacks_reset), (2, 4, 6));
        assert!(p.hairpins(|_| false).is_empty());
    }
}
