//! An instance allowance exceeded: the ENA driver counted packets it queued or dropped.

use super::AVAILABLE;
use crate::report::findings::{ev, Context, Fact, Finding, FindingId, Rule, Severity};

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        let ena = &c.r.sections.ena.ena;
        for e in ena.exceeded.iter().filter(|e| e.growth > 0) {
            let available =
                ena.conntrack_allowance_available.iter().find(|a| a.interface == e.interface);
            let facts = match (e.allowance.as_str(), available) {
                ("conntrack", Some(a)) => {
                    vec![Fact::polled(
                        AVAILABLE,
                        Some(format!("{} (fewest {})", a.value, a.min)),
                        None,
                    )]
                }
                _ => Vec::new(),
            };
            out.push(Finding {
                id: FindingId::EnaAllowanceExceeded,
                severity: Severity::Critical,
                summary: format!(
                    "{}: the instance's {} allowance was exceeded: {} packets queued or dropped \
                     outside the node ({})",
                    e.interface,
                    what(&e.allowance),
                    e.growth,
                    e.counter
                ),
                // The instance's, not a pod's.
                pods: Vec::new(),
                window: match e.grew_ns {
                    Some((from, to)) => c.window_between(from, to),
                    None => c.window(&[], |_, _| false),
                },
                evidence: vec![ev(
                    format!("packets over the {} allowance on {}", e.allowance, e.interface),
                    None,
                    Some((e.growth, &format!("ethtool {} {}", e.interface, e.counter))),
                )],
                facts,
                remedy: remedy(&e.allowance),
            });
        }
    }
}

fn what(allowance: &str) -> &str {
    match allowance {
        "bw_in" => "inbound bandwidth",
        "bw_out" => "outbound bandwidth",
        "pps" => "packets-per-second",
        "conntrack" => "tracked-connections",
        "linklocal" => "link-local services (DNS, instance metadata, time sync) packet rate",
        other => other,
    }
}

/// What AWS's guidance and the incident notes give for each allowance.
fn remedy(allowance: &str) -> Vec<String> {
    let bigger = "a larger or network-optimised instance type raises every allowance; spread \
                  the busiest pods over more nodes"
        .to_owned();
    match allowance {
        "bw_in" | "bw_out" => vec![
            bigger,
            "bandwidth above the instance's baseline is burst credit that runs out: size for \
             the sustained rate, and keep single flows under 5 Gbit/s (10 in a placement group)"
                .into(),
        ],
        "pps" => vec![
            bigger,
            "fewer, larger packets: batch small writes, keep connections (no per-request \
             handshakes), a larger MTU inside the VPC"
                .into(),
        ],
        "conntrack" => vec![
            "security group rules that allow all traffic both ways (0.0.0.0/0, all ports) are \
             not tracked: use them for high-connection-count services, or NACLs"
                .into(),
            format!(
                "shorter idle timeouts for tracked connections (the security group's \
                 connection tracking timeouts), and watch {AVAILABLE} before it reaches 0"
            ),
            bigger,
        ],
        "linklocal" => vec![
            "1024 packets per second per interface to the DNS resolver, instance metadata and \
             time sync: cache DNS on the node (NodeLocal DNSCache, dnsmasq) or in the \
             application, and spread CoreDNS over nodes"
                .into(),
            "keep SDK clients long-lived, so credentials are not fetched from instance \
             metadata on every request"
                .into(),
        ],
        _ => vec![bigger],
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        cli::ReportFormat,
        ena::{allowances, tests::ena_stats, Counters},
        family::Family,
        frames::{fixture, Frame, Frames, KernelCounters, Snapshot},
        report::{findings::FindingId, Builder, Report},
    };

    /// A report of three snapshots a second apart, with eth0's ENA statistics at each.
    fn report(stats: [Vec<(String, u64)>; 3]) -> Report {
        let mut b = Builder::default();
        b.frame(&Frame::Header(fixture::header(&[Family::Drops])));
        for (i, s) in stats.into_iter().enumerate() {
            let eth0 = Counters { interface: "eth0".into(), counters: allowances(s) };
            let kernel = KernelCounters { ena: vec![eth0], ..Default::default() };
            let t_ns = 1_000_000_000 * (i as u64 + 1);
            b.frame(&Frame::Snapshot(Snapshot { t_ns, kernel, ..Default::default() }));
        }
        b.finish(None).unwrap()
    }

    #[test]
    fn a_growing_allowance_counter_is_the_finding_with_its_growth() {
        let r =
            report([ena_stats(100, 40, 9000), ena_stats(100, 40, 8000), ena_stats(350, 40, 8500)]);
        let ids: Vec<FindingId> = r.findings.iter().map(|f| f.id).collect();
        assert_eq!(ids, [FindingId::EnaAllowanceExceeded]);
        let f = &r.findings[0];
        assert!(f.summary.contains("eth0") && f.summary.contains("250"), "{}", f.summary);
        assert_eq!(f.evidence[0].kernel, Some(250));
        assert_eq!(
            f.evidence[0].kernel_counter.as_deref(),
            Some("ethtool eth0 pps_allowance_exceeded")
        );
        assert!(f.pods.is_empty(), "the instance's, not a pod's");
        // It grew between the second and the third snapshot only.
        assert_eq!((f.window.from_s, f.window.to_s), (1.0, 2.0));
        let pps = r.sections.ena.ena.exceeded.iter().find(|e| e.allowance == "pps").unwrap();
        assert_eq!((pps.growth, pps.value), (250, 350));
        let linklocal =
            r.sections.ena.ena.exceeded.iter().find(|e| e.allowance == "linklocal").unwrap();
        assert_eq!((linklocal.growth, linklocal.grew_from.as_deref()), (0, None));
        let a = &r.sections.ena.ena.conntrack_allowance_available[0];
        assert_eq!((a.value, a.min), (8500, 8000));

        let json: serde_json::Value =
            serde_json::from_str(&r.render(ReportFormat::Json).unwrap()).unwrap();
        assert_eq!(json["findings"][0]["id"], "ena_allowance_exceeded");
        assert_eq!(json["findings"][0]["confidence"], "confirmed");
        assert_eq!(json["ena"]["conntrack_allowance_available"][0]["min"], 8000);
        let text = r.render(ReportFormat::Text).unwrap();
        assert!(text.contains("ENA allowances"), "{text}");
        assert!(text.contains("conntrack_allowance_available 8500"), "{text}");
        let html = r.render(ReportFormat::Html).unwrap();
        assert!(html.contains("<h2>ENA allowances</h2>"));
        assert!(html.contains("<code>pps_allowance_exceeded</code>"));
    }

    #[test]
    fn the_conntrack_allowance_carries_what_is_left() {
        let s = |exceeded| {
            let mut s = ena_stats(0, 0, 12);
            s.iter_mut().find(|(n, _)| n == "conntrack_allowance_exceeded").unwrap().1 = exceeded;
            s
        };
        let r = report([s(0), s(0), s(9)]);
        let f = &r.findings[0];
        assert!(f.summary.contains("tracked-connections"), "{}", f.summary);
        assert_eq!(f.facts[0].value.as_deref(), Some("12 (fewest 12)"));
    }

    #[test]
    fn growth_counts_on_across_a_device_reset() {
        let r = report([ena_stats(100, 0, 0), ena_stats(160, 0, 0), ena_stats(25, 0, 0)]);
        let pps = r.sections.ena.ena.exceeded.iter().find(|e| e.allowance == "pps").unwrap();
        assert_eq!((pps.growth, pps.value), (85, 25));
    }

    #[test]
    fn counters_that_stand_still_are_no_finding() {
        let r =
            report([ena_stats(100, 40, 9000), ena_stats(100, 40, 9000), ena_stats(100, 40, 9000)]);
        assert!(r.findings.is_empty());
        assert!(r.sections.ena.ena.exceeded.iter().all(|e| e.growth == 0));
    }

    #[test]
    fn recordings_from_before_ena_read_without_it() {
        let mut old = serde_json::to_value(KernelCounters::default()).unwrap();
        old.as_object_mut().unwrap().remove("ena").expect("written now");
        let k: KernelCounters = serde_json::from_value(old).unwrap();
        assert!(k.ena.is_empty());
    }
}
