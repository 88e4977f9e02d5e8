//! docs/kernels.md: one section per kernel, rewritten for the kernels of this run; the other
//! kernels' sections are kept from the last run that had them.

use std::{fmt::Write as _, fs, path::Path};

use anyhow::Result;

use super::{kernels, results::Guest};

pub struct Run {
    pub kernel: &'static str,
    pub package: String,
    pub wall_s: f64,
    pub guest: Guest,
}

const HEAD: &str = "# netprobe on the kernels nodes run

Written by `cargo xtask vm-test [--kernel 5.10|6.1|6.12|all]`: each of Debian's cloud kernels
boots under QEMU (TCG) with an initramfs that runs `netprobe doctor`, then lab scenarios
between two network namespaces joined by a veth pair, each under `netprobe report --format
json`. netprobe's count must equal the guest kernel's own counter exactly. Each family runs
once per tier it has programs for (forced with `--tier`): drops at the three tracepoint tiers;
tcp also at fentry and kprobe (`tcp_retransmit_skb`'s return: failed retransmits); ports at
fentry and kprobe (`__inet_hash_connect`'s and `inet_csk_bind_conflict`'s returns) and the
classic tracepoint; conntrack at kprobe (`__nf_conntrack_alloc`'s and `__nf_conntrack_confirm`'s
returns; nf_conntrack is a module, which aya cannot hook with fentry) and the classic
tracepoint; softnet at fentry and kprobe (`net_rx_action`'s entry and return) and tp_btf.
Function arguments are found in each kernel's BTF prototype, never assumed. Early drops are
not hooked: `early_drop_list`, which returns how many entries it evicted, is inlined into
`early_drop` on all four kernels, and `early_drop` returns only whether it evicted any; the
per-netns `early_drop` counter netprobe polls is exact.

| scenario | provoked by | netprobe counts | the guest kernel's counter |
|---|---|---|---|
| closed-port | 50 UDP datagrams to a closed port of pod-b | pod-b `NO_SOCKET` drops; on a kernel without drop reasons (5.10), pod-b drops freed in `__udp4_lib_rcv` | pod-b `Udp NoPorts` growth (must be 50) |
| tcp-retransmits | 1 MB to pod-b, whose nft input drops 1 in 10 segments | retransmits per pod | `TcpRetransSegs` growth, pod-a and pod-b |
| tcp-failed-retransmits | the same, and pod-a's nft output drops 1 in 5 (tail loss probes off in pod-a) | pod-a `retransmit_failed` segments but `EBUSY` (fentry, kprobe) | pod-a `TcpExt TCPRetransFail` growth |
| port-exhaustion | 40 short connections from pod-a with 10 ephemeral ports | pod-a connect() `EADDRNOTAVAIL`, with the range and bound port read at the error | the errors labtool's connect() got |
| bind-conflict | a listener on pod-b's port 5007, then 5 more binds to it | pod-b bind() `EADDRINUSE`; at fentry and kprobe each names the listener holding the port (`held_by`) | the errors labtool's binds got |
| conntrack-messages | 40 connections at once into pod-b, nf_conntrack_max 20 (conntrack family alone) | `table full` messages (printk:console), with or without `in netns N` (those without count node-wide) | the same messages in the guest's dmesg |
| conntrack-full | the same again, the table still full (with the drops family) | pod-b packets freed by a netfilter verdict | pod-b `/proc/net/stat/nf_conntrack` `drop` growth |
| conntrack-alloc-failures | the same again, conntrack alone at the kprobe tier | pod-b `alloc_failed` | pod-b `/proc/net/stat/nf_conntrack` `drop` growth |
| conntrack-insert-failed | pod-a DNATs a DNS address to pod-b and masquerades; 2000 rounds of two threads sending at once from two addresses on one port (a clash on the reply tuple), conntrack alone at the kprobe tier | pod-a `confirm_failed` | pod-a `/proc/net/stat/nf_conntrack` `insert_failed` growth |
| softnet-squeeze | 20000 UDP datagrams from CPU 0, RPS onto CPU 1, netdev_budget 4, netdev_max_backlog 8 | NET_RX runs squeezed on the budget, all CPUs | `time_squeeze` growth in `/proc/net/softnet_stat` |
";

const MARK: &str = "<!-- kernel ";

pub fn write(path: &Path, runs: &[Run]) -> Result<()> {
    let old = fs::read_to_string(path).unwrap_or_default();
    let mut out = HEAD.to_string();
    for k in kernels::ALL {
        let section = match runs.iter().find(|r| r.kernel == k.name) {
            Some(run) => render(run),
            None => match old_section(&old, k.name) {
                Some(s) => s,
                None => continue,
            },
        };
        out += "\n";
        out += &section;
    }
    fs::write(path, out)?;
    Ok(())
}

fn render(run: &Run) -> String {
    let g = &run.guest;
    let mut s = format!("{MARK}{} -->\n## {} ({})\n\n", run.kernel, g.release, run.package);
    let _ = writeln!(
        s,
        "The runner started {:.1} s after the kernel (modules loaded) and finished at {}; \
         {:.0} s wall clock from QEMU's start to its exit.\n",
        g.boot_s,
        g.done_s.map_or("-".to_string(), |d| format!("{d:.1} s")),
        run.wall_s
    );
    let passed = g.outcomes.iter().filter(|o| o.pass).count();
    let infeasible = g.outcomes.iter().filter(|o| o.infeasible).count();
    let _ = write!(s, "**{passed} of {} runs pass.**", g.outcomes.len());
    if infeasible > 0 {
        let _ = write!(s, " {infeasible} cannot run on this kernel (n/a below, with why).");
    }
    s += "\n\n";
    s += "| family | tier | scenario | compared | netprobe | kernel | result |\n";
    s += "|---|---|---|---|---|---|---|\n";
    for o in &g.outcomes {
        let result = if o.pass {
            "pass".to_string()
        } else if o.infeasible {
            format!("n/a: {}", o.note)
        } else {
            format!("**FAIL**: {}", o.note)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            o.family,
            o.tier,
            o.scenario,
            o.counter,
            o.netprobe,
            o.kernel,
            result.replace('|', "\\|")
        );
    }
    s += "\n<details><summary>netprobe doctor</summary>\n\n```\n";
    for l in &g.doctor {
        s += l;
        s += "\n";
    }
    s += "```\n</details>\n";
    s
}

/// A kernel's section of the previous file, up to the next kernel's mark.
fn old_section(old: &str, kernel: &str) -> Option<String> {
    let start = old.find(&format!("{MARK}{kernel} -->\n"))?;
    let rest = &old[start..];
    let end = rest[MARK.len()..].find(MARK).map_or(rest.len(), |e| e + MARK.len());
    Some(rest[..end].trim_end().to_string() + "\n")
}
