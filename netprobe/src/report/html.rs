//! `--format html`: one self-contained file for an incident ticket. Charts are inline SVG
//! drawn here, so the file needs no script and no network to render. Each family draws its
//! own charts (`Section::html`) with the helpers here.

use std::{collections::BTreeMap, fmt::Write};

use super::{
    findings::{Confidence, Severity},
    text,
    timeline::{Metric, SeriesView},
    Report,
};

/// Series colours, in legend order; also what the browser test looks for, so the first is used
/// nowhere else on the page (the critical border is a darker red).
pub const PALETTE: [&str; 8] =
    ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 60.0;

pub fn html(r: &Report) -> String {
    let mut s = String::new();
    let title = format!("netprobe report: {} {}", r.host, r.from);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{CSS}</style></head><body>\n<h1>{}</h1>\n<p class=\"meta\">{} to {} ({:.1} s) \
         on {} (kernel {}){}</p>\n",
        esc(&title),
        esc(&title),
        esc(&r.from),
        esc(&r.to),
        r.duration_s,
        esc(&r.host),
        esc(&r.kernel_release),
        r.pod.as_deref().map_or(String::new(), |p| format!(", pod {}", esc(p)))
    );
    if let Some(note) = &r.note {
        let _ = write!(s, "<p class=\"note\">{}</p>", esc(note));
    }
    for u in &r.unavailable {
        let what = format!("not running: {} (it cannot run here): {}", u.family.name(), u.why);
        let _ = write!(s, "<p class=\"note\">{}</p>", esc(&what));
    }
    findings(r, &mut s);
    s += &r.sections.html(r);
    let _ = writeln!(s, "<h2>All counts</h2>\n<pre>{}</pre>\n</body></html>", esc(&text::text(r)));
    s
}

fn findings(r: &Report, s: &mut String) {
    let _ = writeln!(s, "<h2>Findings ({})</h2>", r.findings.len());
    if r.findings.is_empty() {
        *s += "<p>None: nothing netprobe watches went wrong in this window.</p>\n";
    }
    for f in &r.findings {
        let (class, word) = match f.severity {
            Severity::Critical => ("critical", "CRITICAL"),
            Severity::Warning => ("warning", "WARNING"),
        };
        let pods = if f.pods.is_empty() { "node".into() } else { f.pods.join(", ") };
        let _ = write!(
            s,
            "<div class=\"finding {class}\"><h3><span class=\"sev\">{word}</span> <code>{}</code> \
             {}</h3><p>{}</p><p class=\"meta\">{} to {}; {}</p>\
             <table><tr><th>evidence</th><th>netprobe</th><th>kernel</th><th>kernel counter</th></tr>",
            f.id,
            esc(&pods),
            esc(&f.summary),
            esc(&f.window.from),
            esc(&f.window.to),
            match f.confidence() {
                Confidence::Confirmed => "confirmed by the kernel's own counters".to_owned(),
                Confidence::KernelDiffers =>
                    format!("the kernel's counter differs: {}", esc(&f.discrepancy().unwrap_or_default())),
                Confidence::Measured =>
                    "from netprobe's counts (no kernel counter confirms it)".to_owned(),
                Confidence::Incomplete => "a fact it rests on could not be read".to_owned(),
            }
        );
        for e in &f.evidence {
            let n = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&e.what),
                n(e.netprobe),
                n(e.kernel),
                esc(e.kernel_counter.as_deref().unwrap_or(""))
            );
        }
        *s += "</table>";
        if !f.facts.is_empty() {
            let facts: Vec<String> = f.facts.iter().map(|x| esc(&x.text())).collect();
            let _ = write!(s, "<p class=\"meta\">rests on: {}</p>", facts.join("; "));
        }
        *s += "<ul>";
        for fix in &f.remedy {
            let _ = write!(s, "<li>{}</li>", esc(fix));
        }
        *s += "</ul></div>\n";
    }
}

pub fn series(r: &Report, metric: Metric) -> Vec<&SeriesView> {
    r.timeline.series.iter().filter(|v| v.metric == metric).collect()
}

pub fn group<'a>(
    list: &[&'a SeriesView],
    key: impl Fn(&SeriesView) -> String,
) -> BTreeMap<String, Vec<&'a SeriesView>> {
    let mut out: BTreeMap<String, Vec<&SeriesView>> = BTreeMap::new();
    for v in list {
        out.entry(key(v)).or_default().push(v);
    }
    out
}

pub fn charts(
    s: &mut String,
    t_s: &[f64],
    groups: &BTreeMap<String, Vec<&SeriesView>>,
    unit: &str,
    none: &str,
) {
    chart_set(s, t_s, groups, unit, none, |v| v.label.clone());
}

pub fn chart_set(
    s: &mut String,
    t_s: &[f64],
    groups: &BTreeMap<String, Vec<&SeriesView>>,
    unit: &str,
    none: &str,
    label: impl Fn(&SeriesView) -> String,
) {
    if groups.values().all(Vec::is_empty) {
        let _ = writeln!(s, "<p class=\"none\">{none}</p>");
        return;
    }
    for (title, list) in groups {
        let named: Vec<(String, &[u64])> =
            list.iter().map(|v| (label(v), v.values.as_slice())).collect();
        let last = t_s.last().copied().unwrap_or(0.0);
        let axis = ("0 s".to_owned(), format!("{last:.0} s ({unit})"));
        stacked_bars(s, title, t_s.len(), &axis, &named);
    }
}

/// `n` bars, one colour per series, stacked; `axis` labels the first and last.
pub fn stacked_bars(
    s: &mut String,
    title: &str,
    n: usize,
    axis: &(String, String),
    series: &[(String, &[u64])],
) {
    let n = n.max(1);
    let totals: Vec<u64> =
        (0..n).map(|i| series.iter().map(|(_, v)| v.get(i).copied().unwrap_or(0)).sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot = WIDTH - LEFT - 10.0;
    let bar = plot / n as f64;
    let _ = write!(
        s,
        "<figure><figcaption>{}</figcaption><svg class=\"chart\" width=\"{WIDTH}\" \
         height=\"{}\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\">",
        esc(title),
        HEIGHT + 40.0,
        HEIGHT + 40.0
    );
    // Axes, the top value and the time span.
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"10\" x2=\"{LEFT}\" y2=\"{HEIGHT}\" class=\"axis\"/>\
         <line x1=\"{LEFT}\" y1=\"{HEIGHT}\" x2=\"{}\" y2=\"{HEIGHT}\" class=\"axis\"/>\
         <text x=\"{}\" y=\"16\" class=\"tick\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{HEIGHT}\" class=\"tick\" text-anchor=\"end\">0</text>\
         <text x=\"{LEFT}\" y=\"{}\" class=\"tick\">{}</text>\
         <text x=\"{}\" y=\"{}\" class=\"tick\" text-anchor=\"end\">{}</text>",
        WIDTH - 10.0,
        LEFT - 4.0,
        LEFT - 4.0,
        HEIGHT + 14.0,
        esc(&axis.0),
        WIDTH - 10.0,
        HEIGHT + 14.0,
        esc(&axis.1)
    );
    for i in 0..n {
        let mut y = HEIGHT;
        for (k, (name, values)) in series.iter().enumerate() {
            let v = values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = (v as f64 / max * (HEIGHT - 10.0)).max(1.0);
            y -= h;
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" \
                 fill=\"{}\"><title>{}, bar {}: {v}</title></rect>",
                LEFT + i as f64 * bar + bar * 0.1,
                (bar * 0.8).max(1.0),
                PALETTE[k % PALETTE.len()],
                esc(name),
                i + 1
            );
        }
    }
    *s += "</svg><div class=\"legend\">";
    for (k, (name, values)) in series.iter().enumerate() {
        let total: u64 = values.iter().sum();
        let _ = write!(
            s,
            "<span><i style=\"background:{}\"></i>{} ({total})</span>",
            PALETTE[k % PALETTE.len()],
            esc(name)
        );
    }
    *s += "</div></figure>\n";
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:960px}\
h1{font-size:20px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}\
.meta{color:#666}.note{background:#fff3cd;padding:6px}\
.finding{border-left:6px solid #999;padding:4px 12px;margin:12px 0;background:#fafafa}\
.critical{border-color:#a50f15}.warning{border-color:#ff7f0e}.sev{font-weight:bold}\
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}\
td.n{text-align:right}.axis{stroke:#444}.tick{font-size:11px;fill:#444}\
.legend span{margin-right:14px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}\
.none{color:#666;font-style:italic}pre{font-size:12px;background:#f4f4f4;padding:8px;overflow:auto}";
