//! `--format text`: findings first, then each family's tables (its `Section::text`).

use super::{
    findings::{Confidence, Finding, Severity},
    Report,
};

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
        s += &format!("NOT RUNNING: {} (it cannot run here): {}\n", u.family.name(), u.why);
    }
    s += &findings(&r.findings);
    s += &r.sections.text(r);
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
pub fn table<const N: usize>(head: [&str; N], rows: impl Iterator<Item = [String; N]>) -> String {
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
            Confidence::KernelDiffers => "the kernel's counter differs",
            Confidence::Measured => "netprobe's counts",
            Confidence::Incomplete => "a fact it rests on is missing",
        };
        s += &format!("\n{}. {severity} {} [{pods}] {from}-{to} ({sure})\n", i + 1, f.id);
        s += &format!("   {}\n", f.summary);
        if let Some(why) = f.discrepancy() {
            s += &format!("   kernel differs: {why}\n");
        }
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
