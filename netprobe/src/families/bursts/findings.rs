//! Bursts: microbursts found in the bins.

use crate::report::{
    findings::{ev, Context, Evidence, Finding, FindingId, Rule, Severity},
    timeline::{Metric, Subject},
};

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        if c.r.sections.bursts.burst_count == 0 {
            return;
        }
        let mut pods: Vec<String> =
            c.r.sections.bursts.bursts.iter().map(|b| b.pod.clone()).collect();
        pods.sort();
        pods.dedup();
        let loss =
            c.r.sections.softnet.softnet.as_ref().is_some_and(|s| !s.backlog_drops.is_empty());
        let mut evidence: Vec<Evidence> =
            c.r.sections
                .bursts
                .bursts
                .iter()
                .take(3)
                .map(|b| {
                    ev(
                        format!(
                            "{} {}: {} packets in {:.0} us, peak {:.0} pps, CPU {}",
                            b.pod, b.interface, b.packets, b.duration_us, b.peak_pps, b.cpu
                        ),
                        Some(b.packets),
                        None,
                    )
                })
                .collect();
        evidence.insert(0, ev("bursts found", Some(c.r.sections.bursts.burst_count), None));
        let netns: Vec<u32> = c.r.sections.bursts.bursts.iter().map(|b| b.netns).collect();
        out.push(Finding {
            id: FindingId::Microburst,
            facts: Vec::new(),
            severity: if loss { Severity::Critical } else { Severity::Warning },
            summary: format!(
                "{} microbursts: sub-millisecond packet rates far above the average, invisible to \
                 15 s scrapes",
                c.r.sections.bursts.burst_count
            ),
            pods,
            window: c.window(
                &[Metric::BURSTS],
                |s, _| matches!(s, Subject::Netns(n) if netns.contains(&n)),
            ),
            evidence,
            remedy: vec![
                "absorb bursts: net.core.netdev_max_backlog and the NIC/veth queue lengths; give \
                 receive processing room (net.core.netdev_budget, RPS)"
                    .into(),
                "smooth the sender: pacing (fq qdisc), smaller batches, or spread clients' timers"
                    .into(),
            ],
        });
    }
}
