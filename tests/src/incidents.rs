//! The incidents of shared/incidents/, reproduced in the lab: what each sets up and how it
//! provokes the fault. The privileged tests run these and check netprobe against the kernel;
//! `cargo xtask lab incident <name>` runs them by hand, to rehearse netprobe on a known fault.

use std::{thread, time::Duration};

use anyhow::{bail, Result};

use crate::{
    lab::{Background, Lab},
    netprobe::beside_me,
    traffic::{firewall, nft, tcp_closed, udp},
};

pub struct Incident {
    pub name: &'static str,
    /// What it reproduces, and which write-up it comes from.
    pub about: &'static str,
    pub pods: &'static [&'static str],
    /// The netprobe families that see it.
    pub events: &'static str,
    /// The finding `netprobe report` must rank first (docs/findings.md).
    pub finding: &'static str,
    /// What `netprobe report` needs besides `--events` to see it (a lab-sized threshold).
    pub report_args: &'static [&'static str],
    /// The pods it involves, the one at fault first: no finding may name another.
    pub involved: &'static [&'static str],
    /// Prepares the pods; what it returns runs until the incident is over.
    pub setup: fn(&Lab) -> Result<Vec<Background>>,
    /// Makes the fault happen, once; bounded.
    pub provoke: fn(&Lab) -> Result<()>,
}

pub const ALL: &[Incident] = &[
    Incident {
        name: "closed-port",
        about: "TCP SYNs and UDP datagrams to closed ports in pod-b: NO_SOCKET drops",
        pods: &["pod-a", "pod-b", "pod-c"],
        events: "drops",
        finding: "packet_drops",
        report_args: &[],
        involved: &["pod-b", "pod-a"],
        setup: |_| Ok(Vec::new()),
        provoke: |lab| {
            let b = lab.ip("pod-b").to_string();
            tcp_closed(lab, "pod-a", "pod-b", 8080, 25)?;
            udp(lab, "pod-a", &b, 8080, 25)?;
            udp(lab, "pod-a", "fd99::11", 53, 25)
        },
    },
    Incident {
        name: "netfilter-drop",
        about: "an nft rule in pod-a drops :5353 (policy, not conntrack)",
        pods: &["pod-a", "pod-b"],
        events: "drops,conntrack",
        finding: "netfilter_policy_drop",
        report_args: &[],
        involved: &["pod-a", "pod-b"],
        setup: |lab| firewall(lab, "pod-a", 5353).map(|()| Vec::new()),
        provoke: |lab| {
            let a = lab.ip("pod-a").to_string();
            udp(lab, "pod-b", &a, 5353, 25)?;
            lab.sh(
                "pod-b",
                &format!(
                    "for i in $(seq 5); do timeout 0.3 bash -c 'exec 3<>/dev/tcp/{a}/5353'; done"
                ),
            )?;
            Ok(())
        },
    },
    Incident {
        name: "softnet-squeeze",
        about: "incident 01: RPS onto CPU 1, netdev_budget 4, netdev_max_backlog 8, a UDP blast",
        pods: &["pod-a", "pod-b"],
        events: "drops,softnet",
        finding: "softnet_budget_exhausted",
        report_args: &[],
        involved: &["pod-b", "pod-a", "host"],
        setup: |lab| {
            lab.sh_ok("pod-b", "echo 2 > /sys/class/net/eth0/queues/rx-0/rps_cpus")?;
            // A budget below the backlog's depth: a full backlog is more than one run may take.
            lab.set_sysctl("net.core.netdev_budget", "4")?;
            lab.set_sysctl("net.core.netdev_max_backlog", "8")?;
            Ok(Vec::new())
        },
        provoke: |lab| {
            let (b, tool) = (lab.ip("pod-b").to_string(), labtool());
            // A trickle first: CPU 1's first backlog poll shows netprobe its softnet_data.
            lab.sh_ok("pod-a", &format!("taskset -c 0 {tool} blast {b} 9 3"))?;
            thread::sleep(Duration::from_millis(200));
            lab.sh_ok("pod-a", &format!("taskset -c 0 {tool} blast {b} 9 200000")).map(drop)
        },
    },
    Incident {
        name: "lossy-path",
        about: "incident 02: one in ten data segments to pod-b's server is lost: retransmits",
        pods: &["pod-a", "pod-b", "pod-c"],
        events: "tcp",
        finding: "retransmit_storm",
        report_args: &[],
        involved: &["pod-a", "pod-b"],
        setup: |lab| {
            // One segment per packet, as on a wire: a lost 64 KB GSO packet is tens of
            // segments, and the share of segments lost would swing around the 5% that makes
            // the storm critical (seen in CI under load).
            lab.sh_ok("pod-a", "ip link set dev eth0 gso_max_segs 1")?;
            nft(
                lab,
                "pod-b",
                "input",
                &["tcp dport 5001 'tcp flags & syn == 0' numgen random mod 10 == 0 drop"],
            )?;
            server(lab, &["sink", "5001"])
        },
        provoke: |lab| {
            let (b, tool) = (lab.ip("pod-b").to_string(), labtool());
            lab.sh_ok("pod-a", &format!("timeout 60 {tool} send {b} 5001 4000000")).map(drop)
        },
    },
    Incident {
        name: "handshake-timeout",
        about: "incident 05: pod-b's SYN-ACKs never get back (the NLB hairpin shape)",
        pods: &["pod-a", "pod-b"],
        events: "tcp",
        finding: "syn_retransmits",
        report_args: &[],
        involved: &["pod-a", "pod-b"],
        setup: |lab| {
            nft(lab, "pod-b", "output", &["tcp flags '& (syn | ack) == syn | ack' drop"])?;
            server(lab, &["sink", "5002"])
        },
        provoke: |lab| {
            let (b, tool) = (lab.ip("pod-b").to_string(), labtool());
            // SYN retransmits come at 1 s, 2 s and 3 s on 6.7+ (tcp_syn_linear_timeouts 4),
            // at 1 s and 3 s before; 3.5 s sees three (two) of them, well apart from the next.
            let out = lab.sh("pod-a", &format!("{tool} connect {b} 5002 3500"))?;
            if out.status.success() {
                bail!("the handshake completed: the SYN-ACK drop rule did not work");
            }
            Ok(())
        },
    },
    Incident {
        name: "port-exhaustion",
        about: "incidents 03/04: ten ephemeral ports, short actively closed connections",
        pods: &["pod-a", "pod-b"],
        events: "ports",
        finding: "ephemeral_port_exhaustion",
        report_args: &[],
        involved: &["pod-a", "pod-b"],
        setup: |lab| {
            lab.sh_ok("pod-a", "sysctl -qw net.ipv4.ip_local_port_range='40000 40009'")?;
            server(lab, &["sink", "5003"])
        },
        provoke: |lab| {
            let (b, tool) = (lab.ip("pod-b").to_string(), labtool());
            let seen = lab.sh_ok("pod-a", &format!("{tool} connect-loop {b} 5003 40"))?;
            println!("the client saw: {}", seen.trim());
            Ok(())
        },
    },
    Incident {
        name: "bind-collision",
        about: "incident 03 (Envoy): SO_REUSEADDR source reused for a live 4-tuple: errno 99",
        pods: &["pod-a", "pod-b"],
        events: "ports",
        finding: "bind_conflict",
        report_args: &[],
        involved: &["pod-a", "pod-b"],
        setup: |lab| server(lab, &["sink", "5004"]),
        provoke: |lab| {
            let (a, b, tool) =
                (lab.ip("pod-a").to_string(), lab.ip("pod-b").to_string(), labtool());
            let errno = lab.sh_ok("pod-a", &format!("{tool} collide {a} 45000 {b} 5004"))?;
            println!("the second connect() returned errno {}", errno.trim());
            Ok(())
        },
    },
    Incident {
        name: "conntrack-full",
        about: "incidents 02/04: nf_conntrack_max 20 and 40 connections into a tracked pod",
        pods: &["pod-a", "pod-b", "pod-c"],
        events: "drops,conntrack",
        finding: "conntrack_table_full",
        report_args: &[],
        involved: &["pod-b", "pod-a"],
        setup: |lab| {
            nft(lab, "pod-b", "input", &["ct state new counter accept"])?;
            let server = server(lab, &["sink", "5005"])?;
            lab.set_sysctl("net.netfilter.nf_conntrack_max", "20")?;
            Ok(server)
        },
        provoke: |lab| connect_many(lab, 5005),
    },
    Incident {
        name: "listen-overflow",
        about: "incident 02: a server that never accepts, somaxconn 2, twenty clients",
        pods: &["pod-a", "pod-b"],
        events: "drops,tcp",
        finding: "listen_overflow",
        report_args: &[],
        involved: &["pod-b", "pod-a"],
        setup: |lab| {
            lab.sh_ok("pod-b", "sysctl -qw net.core.somaxconn=2")?;
            server(lab, &["listen", "6000"])
        },
        provoke: |lab| connect_many(lab, 6000),
    },
    Incident {
        name: "linklocal-dns",
        about: "notes 02: pods querying the VPC resolver (169.254.169.253, in its own netns) \
                past the 1024 packets/s every pod of the node shares",
        pods: &["pod-a", "pod-b", "pod-c", RESOLVER],
        events: "linklocal",
        finding: "linklocal_dns_rate",
        report_args: &[],
        involved: &["pod-a", "pod-b"],
        setup: resolver,
        provoke: |lab| {
            // pod-a the most, pod-b less, over IPv6 too and through the cluster DNS IP, pod-c
            // only to a port that is neither; every query waits for its answer, as a resolver
            // library does.
            let (tool, cluster) = (labtool(), lab.ip(RESOLVER));
            for (pod, to, n) in [
                ("pod-a", VPC_RESOLVER.to_owned(), LOOKUPS[0]),
                ("pod-b", VPC_RESOLVER.to_owned(), LOOKUPS[1]),
                ("pod-b", VPC_RESOLVER6.to_owned(), LOOKUPS[2]),
                ("pod-b", cluster.to_string(), LOOKUPS[3]),
            ] {
                let answered = lab.sh_ok(pod, &format!("{tool} lookups {to} 53 {n}"))?;
                println!("{pod}: {} of {n} lookups to {to} answered", answered.trim());
            }
            udp(lab, "pod-c", &cluster.to_string(), 5353, 50)
        },
    },
    Incident {
        name: "idle-timeout",
        about:
            "notes 02 (NAT gateway, NLB: 350 s): a middlebox forgets flows idle 2 s, then resets",
        pods: &["pod-a", "pod-b", "pod-c", "pod-d"],
        events: "tcp",
        finding: "idle_timeout_reset",
        report_args: &["--idle-reset-min", "2s"],
        involved: &["pod-a", "pod-b", "pod-c"],
        setup: |lab| {
            // pod-b serves on a remote address that pod-a and pod-d reach through pod-c, both
            // ways; pod-c tracks flows, forgets them after 2 s idle, and answers a segment of
            // a forgotten flow with a reset, as a NAT gateway does.
            lab.sh_ok(
                "pod-b",
                &format!(
                    "ip addr add {REMOTE}/32 dev lo && ip rule add from {REMOTE} table 100 && \
                     ip route add default via {} table 100",
                    lab.ip("pod-c")
                ),
            )?;
            for client in ["pod-a", "pod-d"] {
                lab.sh_ok(client, &format!("ip route add {REMOTE}/32 via {}", lab.ip("pod-c")))?;
            }
            router(lab, "pod-c")?;
            lab.sh_ok("pod-c", &format!("ip route add {REMOTE}/32 via {}", lab.ip("pod-b")))?;
            nft(
                lab,
                "pod-c",
                "forward",
                &["ct state new tcp flags '& (syn | ack) == ack' reject with tcp reset"],
            )?;
            lab.sh_ok("pod-c", "sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established=2")?;
            server(lab, &["sink", "5008"])
        },
        provoke: |lab| {
            let tool = labtool();
            // pod-d stays under the timeout; each of pod-a's four is quiet past it.
            for (pod, n, quiet, reset) in
                [("pod-d", 2, 1000, 0), ("pod-a", IDLE_RESETS, 3000, IDLE_RESETS)]
            {
                let out = lab.sh_ok(pod, &format!("{tool} idle {REMOTE} 5008 {n} {quiet}"))?;
                if out.trim() != reset.to_string() {
                    bail!("{pod}: {} of {n} connections were reset, not {reset}", out.trim());
                }
            }
            Ok(())
        },
    },
    Incident {
        name: "lb-hairpin",
        about:
            "incident 05: a load balancer DNATs to a backend on the client's own bridge, no SNAT",
        pods: &["pod-a", "pod-b", "pod-c", "pod-d"],
        events: "tcp",
        finding: "lb_hairpin",
        report_args: &[],
        involved: &["pod-a", "pod-b", "pod-c"],
        setup: |lab| {
            // pod-c is the load balancer: its VIP goes to pod-b's server with the client's
            // address kept, so pod-b answers pod-a directly, from its own address.
            lab.sh_ok("pod-a", &format!("ip route add {VIP}/32 via {}", lab.ip("pod-c")))?;
            router(lab, "pod-c")?;
            lab.sh_ok(
                "pod-c",
                &format!(
                    "nft add table ip lb && \
                     nft add chain ip lb pre '{{ type nat hook prerouting priority -100; }}' && \
                     nft add rule ip lb pre ip daddr {VIP} tcp dport 80 dnat to {}:5007",
                    lab.ip("pod-b")
                ),
            )?;
            server(lab, &["sink", "5007"])
        },
        provoke: |lab| {
            let tool = labtool();
            // pod-d, uninvolved, uses the backend directly.
            let b = lab.ip("pod-b");
            lab.sh_ok("pod-d", &format!("{tool} connect-loop {b} 5007 20"))?;
            // As in handshake-timeout: 3.5 s sees the SYN resent at 1, 2 and 3 s (6.7+).
            let out = lab.sh("pod-a", &format!("{tool} connect {VIP} 80 3500"))?;
            if out.status.success() {
                bail!("the handshake through the load balancer completed: no hairpin");
            }
            Ok(())
        },
    },
    Incident {
        name: "conntrack-race",
        about: "incidents 02/04: the DNS conntrack race through a DNAT to a DNS pod, two \
                threads at once, on the reply-direction clash 6.18 cannot resolve",
        pods: &["pod-a", "pod-b", "pod-c"],
        events: "drops,conntrack",
        finding: "conntrack_insert_failed",
        report_args: &[],
        involved: &["pod-a", "pod-b"],
        setup: dns_nat,
        provoke: |lab| {
            let (a, tool) = (lab.ip("pod-a").to_string(), labtool());
            let cmd = format!("{tool} udp-race 2000 {DNS_VIP} 53 {a} {SECOND_CLIENT}");
            lab.sh_ok("pod-a", &cmd).map(drop)
        },
    },
];

/// The lab's link-local resolver: a pod of its own, answering on 169.254.169.253:53 and on
/// its lab address (the "cluster DNS service IP").
pub const RESOLVER: &str = "resolver";
pub const VPC_RESOLVER: &str = "169.254.169.253";
pub const VPC_RESOLVER6: &str = "fd00:ec2::253";
/// Lookups of the linklocal-dns incident: pod-a and pod-b to the VPC resolver, pod-b to its
/// IPv6 address and to the cluster DNS IP.
pub const LOOKUPS: [u32; 4] = [1200, 300, 60, 40];

/// The resolver pod with 169.254.169.253 and fd00:ec2::253 on its eth0, answering UDP on port
/// 53, and nft counters of what each other pod sent it and got back (comments
/// `pod/direction/destination`, `link_local6` for IPv6); the other pods reach it on-link.
fn resolver(lab: &Lab) -> Result<Vec<Background>> {
    lab.sh_ok(RESOLVER, &format!("ip addr add {VPC_RESOLVER}/32 dev eth0"))?;
    lab.sh_ok(RESOLVER, &format!("ip addr add {VPC_RESOLVER6}/128 dev eth0 nodad"))?;
    let mut input = Vec::new();
    let mut output = Vec::new();
    for (i, pod) in lab.pods().iter().enumerate().filter(|(_, p)| *p != RESOLVER) {
        lab.sh_ok(pod, &format!("ip route add {VPC_RESOLVER}/32 dev eth0"))?;
        lab.sh_ok(pod, &format!("ip -6 route add {VPC_RESOLVER6}/128 dev eth0"))?;
        // The lab's addresses: 10.99.0.(10+i) and fd99::(10+i).
        let (ip, ip6) = (lab.ip(pod).to_string(), format!("fd99::{}", i + 10));
        for (family, from, to, what) in [
            ("ip", &ip, VPC_RESOLVER.to_owned(), "link_local"),
            ("ip6", &ip6, VPC_RESOLVER6.to_owned(), "link_local6"),
            ("ip", &ip, lab.ip(RESOLVER).to_string(), "cluster_dns"),
        ] {
            input.push(format!(
                "{family} saddr {from} {family} daddr {to} udp dport 53 counter comment \
                 {pod}/out/{what}"
            ));
            output.push(format!(
                "{family} daddr {from} {family} saddr {to} udp sport 53 counter comment \
                 {pod}/in/{what}"
            ));
        }
    }
    nft(lab, RESOLVER, "input", &input.iter().map(String::as_str).collect::<Vec<_>>())?;
    nft(lab, RESOLVER, "output", &output.iter().map(String::as_str).collect::<Vec<_>>())?;
    // One socket per address, so that each answer comes from the address asked, as a
    // resolver's do.
    let cluster = lab.ip(RESOLVER).to_string();
    let bg = [VPC_RESOLVER, VPC_RESOLVER6, cluster.as_str()]
        .map(|addr| lab.spawn(RESOLVER, &labtool(), &["udp-echo", addr, "53"]));
    let bg: Vec<Background> = bg.into_iter().collect::<Result<_>>()?;
    lab.wait_listening(RESOLVER, 53, true)?;
    Ok(bg)
}

/// The address pod-b serves on behind pod-c's middlebox (idle-timeout).
pub const REMOTE: &str = "10.99.1.11";
/// The load balancer's address on pod-c (lb-hairpin).
pub const VIP: &str = "10.99.2.100";
/// Connections the idle-timeout incident leaves quiet past the middlebox's timeout.
pub const IDLE_RESETS: u32 = 4;

/// `pod` forwards (its own netns's sysctl) and sends no ICMP redirects, which would teach
/// the clients a path around it.
fn router(lab: &Lab, pod: &str) -> Result<()> {
    lab.sh_ok(
        pod,
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
         net.ipv4.conf.eth0.send_redirects=0",
    )
    .map(drop)
}

/// The cluster DNS Service address pod-a's DNAT sends to pod-b, as kube-proxy would.
pub const DNS_VIP: &str = "10.96.0.10";
/// A second client address in pod-a, masqueraded to pod-a's own on the way out, as a node
/// masquerades its pods.
pub const SECOND_CLIENT: &str = "10.99.0.210";

/// pod-a DNATs DNS to the Service address to pod-b (a UDP sink on port 53) and masquerades
/// what leaves it. Kernel source (net/netfilter/nf_conntrack_core.c, 6.18): two packets of
/// one new flow that race to confirm clash on the original tuple, and nf_ct_resolve_clash
/// resolves that for UDP, whether both went to one backend (the entries match and merge) or to
/// two (nf_ct_resolve_clash_harder inserts the loser's reply direction only): `clashres`
/// grows, nothing drops. What still fails the insert is a clash on the reply tuple: two flows
/// from different sources on one port, masqueraded while neither is confirmed, both keep the
/// port (nf_nat_used_tuple sees no confirmed entry), so their reply tuples are the same; the
/// loser is dropped and counted in `insert_failed` and `drop`.
fn dns_nat(lab: &Lab) -> Result<Vec<Background>> {
    let b = lab.ip("pod-b");
    let rules = format!(
        "table ip np-nat {{
           chain output {{ type nat hook output priority -100; \
             ip daddr {DNS_VIP} udp dport 53 dnat to {b}; }}
           chain postrouting {{ type nat hook postrouting priority 100; \
             oif eth0 masquerade; }}
         }}"
    );
    lab.sh_ok(
        "pod-a",
        &format!(
            "ip addr add {SECOND_CLIENT}/32 dev eth0 && ip route add {DNS_VIP}/32 dev eth0 && \
             nft -f - <<'EOF'\n{rules}\nEOF"
        ),
    )?;
    server(lab, &["udp-sink", "53"])
}

pub fn find(name: &str) -> Option<&'static Incident> {
    ALL.iter().find(|i| i.name == name)
}

/// The lab's traffic tool, target/<profile>/labtool.
pub fn labtool() -> String {
    beside_me("labtool", "cargo build -p netprobe-tests").display().to_string()
}

/// A server in pod-b (`args` are labtool's: a mode, then the port), once `ss` shows it
/// listening.
fn server(lab: &Lab, args: &[&str]) -> Result<Vec<Background>> {
    let bg = lab.spawn("pod-b", &labtool(), args)?;
    let port: u16 = args[1].parse()?;
    lab.wait_listening("pod-b", port, args[0] == "udp-sink")?;
    Ok(vec![bg])
}

fn connect_many(lab: &Lab, port: u16) -> Result<()> {
    let (b, tool) = (lab.ip("pod-b").to_string(), labtool());
    let ok = lab.sh_ok("pod-a", &format!("{tool} connect-many {b} {port} 40 2500"))?;
    println!("{} of 40 connections were established", ok.trim());
    Ok(())
}
