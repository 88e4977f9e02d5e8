//! `--format text`: findings first, then one table per family.

use super::{
    findings::{Confidence, Finding, Severity},
    Report,
};
use crate::{families::bursts::histogram::short, family::Family};

pub fn text(r: &Report) -> String {
    let mut s = String::new();
    // A pod's name, or a selection described in words (`namespace shop, pods with app=web`).
    let scope = match r.pod.as_deref() {
        None => "all pods".to_owned(),
        Some(p) if p.contains(' ') => p.to_owned(),
        Some(p) => format!("pod {p}"),
    };
    let hooks: Vec<String> =
        r.families.iter().map(|f| format!("{} via {}", f.family.name(), f.tier)).collect();
    s += &format!(
        "netprobe report: {} to {} ({:.1} s) on {} ({}), {scope}; {}\n",
        r.from,
        r.to,
        r.duration_s,
        r.host,
        r.kernel_release,
        hooks.join(", ")
    );
    if let Some(note) = &r.note {
        s += &format!("NOTE: {note}\n");
    }
    for u in &r.unavailable {
        s += &format!("NOT RUNNING: {} (this kernel cannot run it): {}\n", u.family.name(), u.why);
    }
    s += &findings(&r.findings);
    let has = |f| r.families.iter().any(|s| s.family == f);

    if has(Family::Drops) {
        let total: u64 = r.drops.iter().map(|d| d.count).sum();
        s += &format!("\nDrops by pod and reason (exact kernel counts, {total} in all)\n");
        let rows = r.drops.iter().map(|d| [d.pod.clone(), d.reason.clone(), d.count.to_string()]);
        s += &table(["POD", "REASON", "COUNT"], rows);
        s += "\nTop kernel drop locations (exact)\n";
        let rows =
            r.locations.iter().map(|l| [l.count.to_string(), l.location.clone(), l.reason.clone()]);
        s += &table(["COUNT", "LOCATION", "REASON"], rows);
        s += "\nListen queue drops by pod (exact, the pod's ListenOverflows and ListenDrops)\n";
        let rows = r
            .listen_drops
            .iter()
            .map(|l| [l.pod.clone(), l.listen_overflows.to_string(), l.listen_drops.to_string()]);
        s += &table(["POD", "OVERFLOWS", "DROPS"], rows);
        s += "By listening socket (its own drop counter, which also counts a few other discards)\n";
        let rows = r.listen_overflows.iter().map(|l| {
            [
                l.pod.clone(),
                format!("{}:{}", l.addr, l.port),
                l.drops.to_string(),
                format!("{}/{}", l.queue, l.max_queue),
            ]
        });
        s += &table(["POD", "LISTENER", "DROPPED", "ACCEPT QUEUE"], rows);
    }
    if has(Family::Tcp) {
        s += "\nTCP retransmits (segments) and resets by pod (exact kernel counts)\n";
        let rows = r.tcp.iter().map(|t| [t.pod.clone(), t.event.to_owned(), t.count.to_string()]);
        s += &table(["POD", "EVENT", "COUNT"], rows);
        s += "\nHandshake timeouts (SYNs retransmitted to one destination; from samples)\n";
        let rows = r.handshake_timeouts.iter().map(|h| {
            [
                h.pod.clone(),
                format!("{}:{}", h.daddr, h.dport),
                h.syn_retransmits.to_string(),
                h.rst_received.to_string(),
            ]
        });
        s += &table(["POD", "DESTINATION", "SYN RETRANSMITS", "RSTS RECEIVED"], rows);
    }
    if let Some(sn) = &r.softnet {
        let knob = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
        s += &format!(
            "\nSoftnet per CPU (exact; netdev_budget {}, netdev_budget_usecs {}, netdev_max_backlog {})\n",
            knob(sn.knobs.netdev_budget),
            knob(sn.knobs.netdev_budget_usecs),
            knob(sn.knobs.netdev_max_backlog)
        );
        let rows = sn.cpus.iter().map(|c| {
            let coverage = if c.runs == 0 {
                "-".into()
            } else {
                format!("{:.0}%", 100.0 * c.covered_runs as f64 / c.runs as f64)
            };
            [
                c.cpu.to_string(),
                c.runs.to_string(),
                c.packets.to_string(),
                format!("{:.1}", c.busy_ns as f64 / 1e6),
                c.squeezes.to_string(),
                coverage,
            ]
        });
        s += &table(
            ["CPU", "NET_RX RUNS", "PACKETS", "BUSY MS", "SQUEEZED", "SQUEEZE COVERAGE"],
            rows,
        );
        if sn.max_squeezed_packets > 0 {
            s += &format!(
                "  largest squeezed run: {} packets; longest: {:.0} us\n",
                sn.max_squeezed_packets, sn.max_squeezed_us
            );
        }
        s += "Backlog overflow drops by pod (exact; freed where the CPU's backlog was full)\n";
        let rows = sn.backlog_drops.iter().map(|d| [d.pod.clone(), d.count.to_string()]);
        s += &table(["POD", "DROPS"], rows);
    }
    if has(Family::Bursts) {
        s += &format!("\nMicrobursts ({} found; the largest)\n", r.burst_count);
        let rows = r.bursts.iter().map(|b| {
            [
                b.time.get(11..26).unwrap_or(&b.time).to_owned(),
                b.pod.clone(),
                b.interface.clone(),
                format!("{:?}", b.direction).to_lowercase(),
                b.packets.to_string(),
                format!("{:.0}", b.duration_us),
                format!("{:.0}", b.peak_pps),
            ]
        });
        s += &table(["START", "POD", "INTERFACE", "DIR", "PACKETS", "US", "PEAK PPS"], rows);
        s += "Per-bin packet rates by pod (1 ms bins; pps)\n";
        let rows = r.burst_rates.iter().map(|p| {
            let pct = |k: &str| p.rates.percentiles.get(k).map_or("-".into(), |v| short(*v));
            [
                p.pod.clone(),
                format!("{:?}", p.direction).to_lowercase(),
                p.rates.bins.to_string(),
                p.rates.packets.to_string(),
                pct("p50"),
                pct("p99"),
                pct("max"),
            ]
        });
        s += &table(["POD", "DIR", "BINS", "PACKETS", "P50", "P99", "MAX"], rows);
    }
    if has(Family::Conntrack) {
        s += "\nConntrack by pod (counters of the pod's own table; drops split by where they were freed)\n";
        let rows = r.conntrack.iter().map(|c| {
            let fill = if c.max > 0 {
                format!(
                    "{}/{} ({:.0}%)",
                    c.peak_count,
                    c.max,
                    100.0 * c.peak_count as f64 / c.max as f64
                )
            } else {
                "-".into()
            };
            [
                c.pod.clone(),
                c.table_full_drops.to_string(),
                c.insert_failed.to_string(),
                c.early_drop.to_string(),
                c.verdict_drops.to_string(),
                c.rule_drops.to_string(),
                fill,
                c.table_full_messages.to_string(),
            ]
        });
        s += &table(
            [
                "POD",
                "TABLE FULL",
                "INSERT FAILED",
                "EARLY DROP",
                "VERDICT DROPS",
                "RULE DROPS",
                "PEAK FILL",
                "KERNEL MSGS",
            ],
            rows,
        );
    }
    if has(Family::Ports) {
        s += "\nPort and bind errors by pod (exact kernel counts)\n";
        let rows = r
            .ports
            .iter()
            .map(|p| [p.pod.clone(), p.op.to_owned(), p.errno.clone(), p.count.to_string()]);
        s += &table(["POD", "CALL", "ERROR", "COUNT"], rows);
        s += "\nWho and where (from samples)\n";
        let rows = r.port_errors.iter().map(|p| {
            let at = match (p.addr, p.port) {
                (Some(a), Some(port)) => format!("{a}:{port}"),
                _ => "?".into(),
            };
            [
                p.pod.clone(),
                p.comm.clone(),
                format!("{} {at}", p.op),
                p.errno.clone(),
                p.count.to_string(),
                p.ip_local_port_range.clone().unwrap_or_else(|| "?".into()),
                p.time_wait_to_destination.map_or("-".into(), |n| n.to_string()),
            ]
        });
        s += &table(
            ["POD", "PROCESS", "CALL", "ERROR", "COUNT", "PORT RANGE", "TIME_WAIT TO DEST"],
            rows,
        );
    }
    let h = &r.health;
    s += &format!(
        "\nLost samples: {} (no room in the ring buffer; the exact counts above are unaffected)\n",
        h.lost_samples
    );
    if h.counter_overflow > 0 {
        s += &format!(
            "WARNING: {} events found their counter map full and are missing from the tables\n",
            h.counter_overflow
        );
    }
    if h.read_errors > 0 {
        s += &format!("Kernel reads that failed: {} (some samples lack fields)\n", h.read_errors);
    }
    if h.skipped_invocations > 0 {
        s += &format!(
            "WARNING: the kernel skipped netprobe's programs {} times (another BPF program was \
             running on that CPU): those events are in no count\n",
            h.skipped_invocations
        );
    }
    s
}

/// Left-aligned columns, numbers right-aligned; "  none" for no rows.
fn table<const N: usize>(head: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
    let rows: Vec<[String; N]> = rows.collect();
    if rows.is_empty() {
        return "  none\n".into();
    }
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            let numeric = !cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit());
            if numeric {
                l += &format!(" {cell:>w$}", w = widths[i]);
            } else {
                l += &format!(" {cell:<w$}", w = widths[i]);
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut out = line(head.to_vec());
    for row in &rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Numbered findings, each with its evidence and remedy.
fn findings(list: &[Finding]) -> String {
    if list.is_empty() {
        return "\nFindings: none. Nothing netprobe watches went wrong in this window.\n".into();
    }
    let mut s = format!("\nFindings ({}, most important first)\n", list.len());
    for (i, f) in list.iter().enumerate() {
        let severity = match f.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
        };
        let pods = if f.pods.is_empty() { "node".into() } else { f.pods.join(", ") };
        let (from, to) = (clock_part(&f.window.from), clock_part(&f.window.to));
        let sure = match f.confidence() {
            Confidence::Confirmed => "confirmed by the kernel's counters",
            Confidence::Measured => "netprobe's counts",
            Confidence::Incomplete => "a fact it rests on is missing",
        };
        s += &format!("\n{}. {severity} {} [{pods}] {from}-{to} ({sure})\n", i + 1, f.id);
        s += &format!("   {}\n", f.summary);
        for e in &f.evidence {
            let ours = e.netprobe.map(|n| format!("netprobe {n}"));
            let kernel = e
                .kernel
                .map(|k| format!("kernel {k} ({})", e.kernel_counter.as_deref().unwrap_or("")));
            let counts: Vec<String> = ours.into_iter().chain(kernel).collect();
            match counts.is_empty() {
                true => s += &format!("   - {}\n", e.what),
                false => s += &format!("   - {}: {}\n", e.what, counts.join(" | ")),
            }
        }
        if !f.facts.is_empty() {
            let facts: Vec<String> = f.facts.iter().map(|x| x.text()).collect();
            s += &format!("   rests on: {}\n", facts.join("; "));
        }
        for fix in &f.remedy {
            s += &format!("   fix: {fix}\n");
        }
    }
    s
}

/// `12:00:01.123` of an RFC 3339 time.
fn clock_part(t: &str) -> &str {
    t.get(11..23).unwrap_or(t)
}
