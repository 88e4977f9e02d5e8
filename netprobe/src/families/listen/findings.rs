//! Listen queues: connection attempts dropped on a full accept queue.

use crate::report::{
    findings::{ev, Context, Finding, FindingId, Rule, Severity},
    timeline::Metric,
};

pub struct Rules;

impl Rule for Rules {
    fn find(&self, c: &Context, out: &mut Vec<Finding>) {
        for l in c.r.sections.listen.listen_drops.iter().filter(|l| l.listen_overflows > 0) {
            let sockets: Vec<_> =
                c.r.sections
                    .listen
                    .listen_overflows
                    .iter()
                    .filter(|s| s.netns == l.netns)
                    .collect();
            let by_socket: u64 = sockets.iter().map(|s| s.drops).sum();
            let mut evidence = vec![ev(
                "connection attempts dropped on a full accept queue (per listener, sk_drops)",
                Some(by_socket),
                Some((l.listen_overflows, "TcpExt ListenOverflows")),
            )];
            evidence.extend(sockets.iter().map(|s| {
                ev(
                    format!(
                        "listener {}:{}: accept queue {}/{}",
                        s.addr, s.port, s.queue, s.max_queue
                    ),
                    Some(s.drops),
                    None,
                )
            }));
            let limit = sockets.first().map_or("?".into(), |s| s.max_queue.to_string());
            out.push(Finding {
                id: FindingId::ListenOverflow,
                facts: Vec::new(),
                severity: Severity::Critical,
                summary: format!(
                    "{}: {} connection attempts dropped because an accept queue was full",
                    l.pod, l.listen_overflows
                ),
                pods: vec![l.pod.clone()],
                window: c.pod_window(&[Metric::KERNEL_LISTEN_OVERFLOWS], l.netns),
                evidence,
                remedy: vec![
                    format!(
                        "raise net.core.somaxconn in {} and the application's listen() backlog \
                         (the queue limit is now {limit}); net.ipv4.tcp_max_syn_backlog for the SYN \
                         queue",
                        l.pod
                    ),
                    "accept faster: more acceptor threads/workers, or a server that is not stalled"
                        .into(),
                ],
            });
        }
    }
}
