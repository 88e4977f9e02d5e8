//! The node's link-local packets near or over the per-ENI limit, and the pods that send them.

use super::{report::LinkLocalReport, Destination, WARN_SHARE};
use crate::report::{
    findings::{ev, Context, Finding, FindingId, Rule, Severity},
    timeline::{Metric, Subject},
};

/// Pods named in the finding.
const TOP: usize = 5;

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        let Some(l) = &c.r.sections.linklocal.linklocal else { return };
        let limit = u64::from(l.pps_limit);
        if (l.peak_pps as f64) < limit as f64 * WARN_SHARE || l.peak_pods.is_empty() {
            return;
        }
        let over = l.peak_pps >= limit;
        let top: Vec<_> = l.peak_pods.iter().take(TOP).collect();
        let mut evidence = vec![ev(
            "link-local packets in the node's busiest second (every pod, both directions)",
            Some(l.peak_pps),
            None,
        )];
        for p in &top {
            evidence.push(ev(
                format!("{}: packets/s in that second, to {}", p.pod, destinations(l, p.netns)),
                Some(p.pps),
                None,
            ));
        }
        let cluster_dns: u64 = l
            .rows
            .iter()
            .filter(|r| r.destination == Destination::ClusterDns)
            .map(|r| r.packets)
            .sum();
        if cluster_dns > 0 {
            evidence.push(ev(
                "DNS packets to the cluster DNS IPs over the report (what CoreDNS or a node-local \
                 cache forwards to the resolver when it misses)",
                Some(cluster_dns),
                None,
            ));
        }
        let metadata = l.rows.iter().any(|r| {
            r.destination == Destination::LinkLocal && r.addr.to_string() == "169.254.169.254"
        });
        let mut remedy = vec![
            "cache DNS lookups: NodeLocal DNSCache on every node, dnsmasq, or the application's \
             own cache (and fewer search-domain expansions: ndots:1 or fully qualified names)"
                .into(),
            "spread CoreDNS over more nodes (more replicas, topology spread constraints, pod \
             anti-affinity), so that no node's ENI carries most forwarded lookups"
                .to_owned(),
        ];
        let sdk =
            "keep SDK clients long-lived, so that instance metadata (169.254.169.254) and its \
                   credentials are fetched once and cached, not on every request";
        if metadata {
            remedy.insert(0, sdk.into());
        } else {
            remedy.push(sdk.into());
        }
        let first = top[0];
        let share = l.peak_pps as f64 * 100.0 / limit as f64;
        let netns: Vec<u32> = top.iter().map(|p| p.netns).collect();
        out.push(Finding {
            id: FindingId::LinklocalDnsRate,
            severity: if over { Severity::Critical } else { Severity::Warning },
            summary: format!(
                "link-local traffic peaked at {} packets/s, {share:.0}% of the {limit}/s that every \
                 pod of the node shares{}; most from {} ({}/s)",
                l.peak_pps,
                if over { ": packets over it are dropped" } else { "" },
                first.pod,
                first.pps
            ),
            pods: top.iter().map(|p| p.pod.clone()).collect(),
            window: c.window(&[Metric::LINK_LOCAL], |s, _| {
                // Series ids are netns inodes but for a pod on a reused inode.
                matches!(s, Subject::Netns(n) if netns.contains(&n))
            }),
            evidence,
            facts: Vec::new(),
            remedy,
        });
    }
}

/// A pod's link-local destinations, busiest first: `169.254.169.253:53/udp`.
fn destinations(l: &LinkLocalReport, netns: u32) -> String {
    let mut seen: Vec<String> = Vec::new();
    for r in l.rows.iter().filter(|r| r.netns == netns && r.destination == Destination::LinkLocal) {
        let d = format!("{}/{}", std::net::SocketAddr::new(r.addr, r.port), r.proto);
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    seen.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        cli::ReportFormat,
        families::{linklocal::snapshot::LinkLocalRow, Rows},
        family::Family,
        frames::{fixture, Frame, Frames, Snapshot},
        report::{Builder, Report},
    };

    const A: u32 = 4026532001;
    const B: u32 = 4026532002;

    fn sent(netns: u32, packets: u64) -> LinkLocalRow {
        LinkLocalRow {
            netns,
            destination: Destination::LinkLocal,
            direction: super::super::Direction::Out,
            proto: "udp".into(),
            addr: "169.254.169.253".parse().unwrap(),
            port: 53,
            packets,
        }
    }

    /// A report of snapshots at these times (s) with these cumulative (pod-a, pod-b) counts.
    fn report(limit: u32, points: &[(f64, u64, u64)]) -> Report {
        let mut b = Builder::default();
        let mut header = fixture::header(&[Family::Linklocal]);
        header.linklocal = Some(super::super::Settings { dns_ips: Vec::new(), pps_limit: limit });
        b.frame(&Frame::Header(header));
        let pods = [(A, "pod-a"), (B, "pod-b")];
        b.frame(&Frame::Pods(BTreeMap::from(pods.map(|(n, p)| (n, crate::pods::tests::meta(p))))));
        for (t, a, bb) in points {
            b.frame(&Frame::Snapshot(Snapshot {
                t_ns: 1_000_000_000 + (t * 1e9) as u64,
                rows: Rows { linklocal: vec![sent(A, *a), sent(B, *bb)], ..Default::default() },
                ..Default::default()
            }));
        }
        b.finish(None).unwrap()
    }

    #[test]
    fn the_busiest_second_near_the_limit_names_the_top_pod_first() {
        // 600 + 300 in the second second: 88% of 1024.
        let r = report(1024, &[(0.0, 0, 0), (1.0, 100, 50), (2.0, 700, 350), (3.0, 750, 400)]);
        let f = &r.findings[0];
        assert_eq!((f.id, f.severity), (FindingId::LinklocalDnsRate, Severity::Warning));
        assert_eq!(f.pods, ["pod-a", "pod-b"]);
        assert_eq!(f.evidence[0].netprobe, Some(900));
        assert_eq!(f.evidence[1].netprobe, Some(600));
        assert!(f.evidence[1].what.contains("169.254.169.253:53/udp"), "{}", f.evidence[1].what);
        assert_eq!(r.sections.linklocal.linklocal.as_ref().unwrap().peak_at_s, Some(2.0));
        // Its places in the text and HTML reports.
        let text = r.render(ReportFormat::Text).unwrap();
        assert!(text.contains("pod-a link-local out 169.254.169.253:53/udp     750"), "{text}");
        let html = r.render(ReportFormat::Html).unwrap();
        assert!(html.contains("<h2>Link-local packets per pod (the node may send 1024/s)</h2>"));
        // The same packets against a higher limit: under 80%, nothing.
        assert!(report(1200, &[(0.0, 0, 0), (1.0, 600, 300)]).findings.is_empty());
        // At the limit it is critical: packets are being dropped.
        let over = report(900, &[(0.0, 0, 0), (1.0, 600, 300)]);
        assert_eq!(over.findings[0].severity, Severity::Critical);
    }

    #[test]
    fn an_average_below_does_not_hide_a_peak_and_a_short_interval_does_not_make_one() {
        // 1000 in one second of ten: an average of 100/s, a peak of 1000/s.
        let mut points = vec![(0.0, 0, 0)];
        points.extend((1..=10).map(|s| (f64::from(s), if s >= 5 { 1000 } else { 0 }, 0)));
        assert_eq!(report(1024, &points).findings[0].evidence[0].netprobe, Some(1000));
        // 100 packets in the last 0.1 s is not 1000/s.
        let short = report(1024, &[(0.0, 0, 0), (1.0, 10, 0), (1.1, 110, 0)]);
        assert!(short.findings.is_empty(), "{:?}", short.findings);
        assert_eq!(short.sections.linklocal.linklocal.unwrap().peak_pps, 100);
    }
}
