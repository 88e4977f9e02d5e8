//! Softnet: a CPU out of softirq budget, and its backlog overflowing.

use crate::report::{
    findings::{ev, Context, Evidence, Finding, FindingId, Rule, Severity},
    timeline::Metric,
};

/// Squeezes below this over a report are the normal life of a busy CPU.
const SQUEEZES_MIN: u64 = 10;

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        let Some(sn) = &c.r.sections.softnet.softnet else { return };
        let knob = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
        let backlog: u64 = sn.backlog_drops.iter().map(|d| d.count).sum();
        let kernel_cpu = |cpu: u32| sn.kernel_cpus.iter().find(|k| k.cpu == cpu);
        let backlog_pods: Vec<String> = sn.backlog_drops.iter().map(|d| d.pod.clone()).collect();
        let squeezed: Vec<_> = sn.cpus.iter().filter(|c| c.squeezes > 0).collect();
        let squeezes: u64 = squeezed.iter().map(|c| c.squeezes).sum();
        if squeezes >= SQUEEZES_MIN {
            let mut evidence: Vec<Evidence> = squeezed
                .iter()
                .map(|cpu| {
                    ev(
                        format!("CPU {}: NET_RX runs cut short with packets left", cpu.cpu),
                        Some(cpu.squeezes),
                        kernel_cpu(cpu.cpu).map(|k| (k.time_squeeze, "softnet_stat time_squeeze")),
                    )
                })
                .collect();
            if sn.max_squeezed_packets > 0 {
                evidence.push(ev(
                    format!(
                        "largest squeezed run: {} packets, longest {:.0} us",
                        sn.max_squeezed_packets, sn.max_squeezed_us
                    ),
                    None,
                    None,
                ));
            }
            if backlog > 0 {
                evidence.push(ev(
                    "packets dropped on a full backlog meanwhile",
                    Some(backlog),
                    None,
                ));
            }
            let cpus: Vec<String> = squeezed.iter().map(|c| c.cpu.to_string()).collect();
            out.push(Finding {
                id: FindingId::SoftnetBudgetExhausted,
                facts: Vec::new(),
                severity: if backlog > 0 { Severity::Critical } else { Severity::Warning },
                summary: format!(
                    "CPU {} ran out of softirq budget {squeezes} times (net.core.netdev_budget {}): \
                     received packets wait for the next run",
                    cpus.join(", "),
                    knob(sn.knobs.netdev_budget)
                ),
                pods: backlog_pods.clone(),
                window: c.window(&[Metric::SQUEEZES], |_, _| true),
                evidence,
                remedy: vec![
                    format!(
                        "raise net.core.netdev_budget (now {}; 600 or more) and \
                         net.core.netdev_budget_usecs (now {}; e.g. 4000-8000) so one NET_RX run \
                         can clear the queue",
                        knob(sn.knobs.netdev_budget),
                        knob(sn.knobs.netdev_budget_usecs)
                    ),
                    "spread receive work over more CPUs: RSS queues, or RPS \
                     (/sys/class/net/<if>/queues/rx-*/rps_cpus)"
                        .into(),
                ],
            });
        }
        if backlog > 0 {
            let dropped: u64 = sn.kernel_cpus.iter().map(|k| k.dropped).sum();
            let mut evidence = vec![ev(
                "packets dropped because a CPU's input backlog was full",
                Some(backlog),
                Some((dropped, "softnet_stat dropped, all CPUs")),
            )];
            evidence.extend(sn.backlog_drops.iter().map(|d| {
                ev(
                    format!("{}: dropped at enqueue_to_backlog ({})", d.pod, d.reason),
                    Some(d.count),
                    None,
                )
            }));
            out.push(Finding {
                id: FindingId::BacklogOverflow,
                facts: Vec::new(),
                severity: Severity::Critical,
                summary: format!(
                    "{backlog} packets dropped on a full CPU backlog (net.core.netdev_max_backlog {})",
                    knob(sn.knobs.netdev_max_backlog)
                ),
                pods: backlog_pods,
                window: c.window(&[Metric::BACKLOG_DROPS], |_, _| true),
                evidence,
                remedy: vec![format!(
                    "raise net.core.netdev_max_backlog (now {}; e.g. 2-4x, 2000-5000), and if \
                     softnet_budget_exhausted is also found, the budget first: a backlog that is \
                     drained faster needs less depth",
                    knob(sn.knobs.netdev_max_backlog)
                )],
            });
        }
    }
}
