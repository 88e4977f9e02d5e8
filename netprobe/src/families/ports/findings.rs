//! Ports: ephemeral ports used up, and bind()/4-tuple conflicts.

use super::{report::PortErrorSite, PortOp};
use crate::report::{
    findings::{ev, Context, Fact, Finding, FindingId, Rule, Severity},
    timeline::Metric,
};

/// Whether a connect() EADDRNOTAVAIL came from a socket bound to a fixed source port (its
/// 4-tuple collided) rather than from the kernel finding no free ephemeral port. Decided by
/// the socket as the kernel had it at the error; a socket it could not read counts as the
/// common case, exhaustion, with that fact missing.
fn fixed_source(site: &PortErrorSite) -> bool {
    site.bound_port.is_some_and(|p| p != 0)
}

/// The facts an EADDRNOTAVAIL diagnosis rests on, from its largest site.
fn facts(site: Option<&PortErrorSite>, time_wait: bool) -> Vec<Fact> {
    let bound = site.and_then(|s| match (s.bound_addr, s.bound_port) {
        (Some(a), Some(p)) => Some(format!("{a}:{p}")),
        _ => None,
    });
    let mut facts = vec![
        Fact::kernel("ip_local_port_range", site.and_then(|s| s.ip_local_port_range.clone())),
        Fact::kernel("bound_address", bound),
    ];
    if time_wait {
        facts.push(Fact::polled(
            "time_wait_to_destination",
            site.and_then(|s| s.time_wait_to_destination).map(|n| n.to_string()),
            site.and_then(|s| s.time_wait_age_ms),
        ));
    }
    facts
}

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        let mut netns: Vec<(u32, String)> =
            c.r.sections.ports.ports.iter().map(|p| (p.netns, p.pod.clone())).collect();
        netns.sort();
        netns.dedup();
        for (ns, pod) in netns {
            let exact = |op: PortOp, errno: &str| {
                c.r.sections
                    .ports
                    .ports
                    .iter()
                    .filter(|p| {
                        p.netns == ns
                            && p.op == op.as_str()
                            && (errno.is_empty() || p.errno == errno)
                    })
                    .map(|p| p.count)
                    .sum::<u64>()
            };
            let sites: Vec<&PortErrorSite> =
                c.r.sections.ports.port_errors.iter().filter(|s| s.netns == ns).collect();
            let connect_na = exact(PortOp::Connect, "EADDRNOTAVAIL");
            let (collided, full): (Vec<&PortErrorSite>, Vec<&PortErrorSite>) = sites
                .iter()
                .filter(|s| s.op == PortOp::Connect && s.errno == "EADDRNOTAVAIL")
                .partition(|s| fixed_source(s));
            let site_evidence = |s: &&PortErrorSite| {
                let at = match (s.addr, s.port) {
                    (Some(a), Some(p)) => format!("{a}:{p}"),
                    _ => "?".into(),
                };
                let from = match (s.bound_addr, s.bound_port) {
                    (Some(a), Some(p)) if p != 0 => format!(" from {a}:{p}"),
                    _ => String::new(),
                };
                let held = s.held_by.as_ref().map(|h| format!(", held by {h}")).unwrap_or_default();
                ev(
                    format!(
                        "{} by {}{from} to {at}{held}: port range {} at the error, {} in TIME_WAIT \
                         to it",
                        s.op,
                        s.comm,
                        s.ip_local_port_range.as_deref().unwrap_or("?"),
                        s.time_wait_to_destination.map_or("?".into(), |n| n.to_string())
                    ),
                    Some(s.count),
                    None,
                )
            };
            let window = c.pod_window(&[Metric::PORT_ERRORS], ns);
            // Samples may miss some errors; exact counts go to the kind the samples show.
            if connect_na > 0 && (!full.is_empty() || collided.is_empty()) {
                let range = full.first().and_then(|s| s.ip_local_port_range.clone());
                let mut evidence =
                    vec![ev("connect() failed with EADDRNOTAVAIL", Some(connect_na), None)];
                evidence.extend(full.iter().map(site_evidence));
                out.push(Finding {
                    id: FindingId::EphemeralPortExhaustion,
                    facts: facts(full.first().copied(), true),
                    severity: Severity::Critical,
                    summary: format!(
                        "{pod}: {connect_na} connect() calls found no free ephemeral port \
                         (EADDRNOTAVAIL)"
                    ),
                    pods: vec![pod.clone()],
                    window: window.clone(),
                    evidence,
                    remedy: vec![
                        "reuse connections: connection pooling / HTTP keep-alive, so each request \
                         does not leave a port in TIME_WAIT"
                            .into(),
                        "net.ipv4.tcp_tw_reuse=1 lets new outgoing connections reuse TIME_WAIT ports \
                         (safe with timestamps; never tcp_tw_recycle)"
                            .into(),
                        format!(
                            "widen net.ipv4.ip_local_port_range (now {}), e.g. 10000 65535",
                            range.as_deref().unwrap_or("?")
                        ),
                    ],
                });
            }
            let bind_errors = exact(PortOp::Bind, "");
            if !collided.is_empty() || bind_errors > 0 {
                let mut evidence = Vec::new();
                if bind_errors > 0 {
                    evidence.push(ev(
                        "bind() failed (EADDRINUSE/EADDRNOTAVAIL)",
                        Some(bind_errors),
                        None,
                    ));
                }
                if !collided.is_empty() {
                    evidence.push(ev(
                        "connect() failed with EADDRNOTAVAIL from a socket bound to a fixed \
                         source port",
                        Some(connect_na),
                        None,
                    ));
                }
                evidence.extend(
                    collided
                        .iter()
                        .chain(sites.iter().filter(|s| s.op == PortOp::Bind))
                        .map(site_evidence),
                );
                out.push(Finding {
                    id: FindingId::BindConflict,
                    facts: if collided.is_empty() {
                        Vec::new()
                    } else {
                        facts(collided.first().copied(), false)
                    },
                    severity: Severity::Critical,
                    summary: format!(
                        "{pod}: an address or 4-tuple was already taken: a socket bound to a \
                         fixed source port collides with a live connection or listener"
                    ),
                    pods: vec![pod.clone()],
                    window,
                    evidence,
                    remedy: vec![
                        "do not bind() a fixed source port before connect(); if a source address \
                         must be chosen, set IP_BIND_ADDRESS_NO_PORT so the kernel picks the port \
                         at connect() (the Envoy/cilium-proxy fix of incident 03)"
                            .into(),
                        "for listeners: find who holds the port (`ss -ltnp` in the pod), or use \
                         SO_REUSEPORT deliberately"
                            .into(),
                    ],
                });
            }
        }
    }
}
