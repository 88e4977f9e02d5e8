//! `netprobe report` as a whole: no findings without a fault, the same report from a
//! recording as live, the HTML report drawn by a real browser, broken recordings refused.

mod common;

use std::{fs, process::Command, thread, time::Duration};

use anyhow::{bail, Context, Result};
use common::{assert_finding, incident, require_root, settle, Scratch};
use netprobe_tests::{
    incidents::labtool,
    lab::Lab,
    netprobe::{run, Running},
};
use serde_json::Value;

/// The first colour of the HTML report's palette: every chart's first series, and nothing
/// else on the page but the legend's swatches of those series.
const FIRST_SERIES: [u8; 3] = [0xd6, 0x27, 0x28];
const FIRST_SERIES_HEX: &str = "#d62728";

#[test]
fn healthy_traffic_gives_no_findings() -> Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _server = lab.spawn("pod-b", &labtool(), &["sink", "5010"])?;
    lab.wait_listening("pod-b", 5010, false)?;
    let np = Running::start(&["report", "--duration", "10m", "--format", "json"])?;
    let b = lab.ip("pod-b").to_string();
    let sent_before = lab.snmp("pod-a", "Tcp", "OutSegs")?;
    lab.sh_ok("pod-a", &format!("timeout 30 {} send {b} 5010 4000000", labtool()))?;
    let tcp_sent = lab.snmp("pod-a", "Tcp", "OutSegs")? - sent_before;
    // A second for the per-pod counters to be polled after the transfer.
    thread::sleep(Duration::from_millis(1200));
    let report: Value = serde_json::from_str(&Running::stop(np)?)?;
    common::assert_best_tiers(&report);
    let findings = report["findings"].as_array().expect("findings");
    println!("{tcp_sent} TCP segments sent by pod-a; findings: {}", report["findings"]);
    assert!(tcp_sent > 1000, "the transfer did not happen: {report:#}");
    // Only the lab's pods: the node's own traffic (the host, other engineers' namespaces)
    // is not this test's to judge.
    let in_lab: Vec<&Value> = findings
        .iter()
        .filter(|f| {
            let pods = f["pods"].as_array().expect("pods");
            pods.is_empty() || pods.iter().any(|p| lab.pods().iter().any(|l| p == l.as_str()))
        })
        .collect();
    assert!(in_lab.is_empty(), "{in_lab:#?}");
    // Every default family runs on this kernel.
    assert_eq!(report["unavailable"], serde_json::json!([]), "{report:#}");
    Ok(())
}

#[test]
fn a_recording_gives_the_live_report_and_its_html_draws_in_chromium() -> Result<()> {
    let (lab, _running, incident) = incident("lossy-path")?;
    let recording = Scratch::new("lossy.np");
    let recording = &recording.0;
    // Drops and TCP: a 4 MB transfer on a busy machine may also overflow a CPU's backlog,
    // a true finding that would rightly rank before the retransmits it causes.
    let np = Running::start(&[
        "report",
        "--duration",
        "10m",
        "--events",
        "drops,tcp",
        "--format",
        "json",
        "--record",
        recording.to_str().unwrap(),
    ])?;
    (incident.provoke)(&lab)?;
    settle();
    let live: Value = serde_json::from_str(&np.stop()?)?;
    assert_finding(&live, incident);

    let out = run(&["report", "--from", recording.to_str().unwrap(), "--format", "json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed: Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "{} bytes recorded; live findings {}",
        fs::metadata(recording)?.len(),
        live["findings"]
    );
    assert_eq!(replayed, live, "the replay differs from the live report");

    let html = Scratch::new("report.html");
    let html = &html.0;
    let out = run(&[
        "report",
        "--from",
        recording.to_str().unwrap(),
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = fs::read_to_string(html)?;
    assert!(!page.contains("http://") && !page.contains("https://"), "the page links out");
    assert!(page.contains("retransmit_storm"));
    // Drops of pod-b (its nft rule) and retransmits of pod-a: every bar is a timeline value.
    let drawn_drops = check_bars(&page, "Drops per reason", &live, "drops", |_| true);
    let drawn_tcp =
        check_bars(&page, "TCP retransmits", &live, "tcp", |l| l.ends_with("retransmit"));
    println!("bars: {drawn_drops} of drops, {drawn_tcp} of retransmits");
    assert!(drawn_drops > 0 && drawn_tcp > 0, "charts without bars");

    let shot = Scratch::new("report.png");
    screenshot(html, shot.path())?;
    let (drawn, _) = pixels_of(shot.path(), FIRST_SERIES)?;
    // Where the target directory is, keep the screenshot to look at.
    let keep = netprobe_tests::netprobe::bin().with_file_name("report-screenshot.png");
    fs::copy(shot.path(), &keep)?;
    // The first series' bars as the SVG draws them, and the legend's 10x10 swatches: the
    // screenshot has that many pixels of the colour, give or take the bars' anti-aliased
    // edges.
    let (inner, outer) = first_series_area(&page);
    let swatches = page.matches(&format!("background:{FIRST_SERIES_HEX}")).count();
    println!(
        "{drawn} pixels of the first series' colour; its bars cover {inner:.0} to {outer:.0},          plus {swatches} swatches; screenshot at {}",
        keep.display()
    );
    assert!(inner > 200.0, "the first series has almost no bars: {inner}");
    // The page uses the colour for those bars and swatches, nowhere else.
    let bars = page.matches(&format!("fill=\"{FIRST_SERIES_HEX}\"")).count();
    assert_eq!(page.matches(FIRST_SERIES_HEX).count(), bars + swatches, "the colour elsewhere");
    assert!(
        drawn as f64 >= inner && drawn as f64 <= outer + 100.0 * swatches as f64,
        "{drawn} pixels of the colour, bars of {inner:.0} to {outer:.0} and {swatches} swatches"
    );
    Ok(())
}

#[test]
fn the_html_squeeze_chart_draws_every_cpus_squeezes() -> Result<()> {
    let (lab, _running, incident) = incident("softnet-squeeze")?;
    let recording = Scratch::new("squeeze.np");
    let args = ["report", "--duration", "10m", "--events", incident.events, "--format", "json"];
    let np = Running::start(&[&args[..], &["--record", recording.str()]].concat())?;
    (incident.provoke)(&lab)?;
    settle();
    let live: Value = serde_json::from_str(&np.stop()?)?;
    assert_finding(&live, incident);
    let html = Scratch::new("squeeze.html");
    let out = run(&["report", "--from", recording.str(), "--format", "html", "-o", html.str()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = fs::read_to_string(html.path())?;
    // One chart, a series per CPU named by it, every bar a value of the timeline.
    let cpu = |v: &Value| format!("CPU {}", v["cpu"]);
    let drawn = check_charts(
        &page,
        "Softnet time squeezes",
        &live,
        "squeezes",
        |_| true,
        |_| String::new(),
        cpu,
    );
    // The timeline's per-second squeezes add up to each CPU's exact count.
    let series = live["timeline"]["series"].as_array().expect("series");
    for c in live["softnet"]["cpus"].as_array().expect("cpus") {
        let charted: u64 = series
            .iter()
            .filter(|v| v["metric"] == "squeezes" && v["cpu"] == c["cpu"])
            .flat_map(|v| v["values"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()))
            .sum();
        println!("CPU {}: {charted} squeezes charted, {} counted", c["cpu"], c["squeezes"]);
        assert_eq!(c["squeezes"], charted, "{c}");
    }
    assert!(drawn > 0, "no squeeze bars");
    Ok(())
}

/// The microburst charts: one per pod and direction of `burst_rates`, in order, a bar per
/// packet-rate range with bins in it, titled with that many bins and as high as its share
/// of the fullest range; the bursts found as the report counts them.
#[test]
fn the_html_burst_charts_draw_the_reports_bins_per_rate() -> Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    lab.wait_listening("pod-b", 9000, true)?;
    let recording = Scratch::new("bursts.np");
    let args = ["report", "--duration", "10m", "--pod", "pod-b", "--events", "bursts"];
    let np =
        Running::start(&[&args[..], &["--format", "json", "--record", recording.str()]].concat())?;
    // The default threshold is a multiple of the recent average, which takes a second of
    // bins to learn; then smooth 2000 pps and 300 datagrams back to back every 200 ms.
    thread::sleep(Duration::from_millis(1200));
    let b = lab.ip("pod-b");
    lab.sh_ok("pod-a", &format!("nice -n -20 {} pulses {b} 9000 3 2000 300 200", labtool()))?;
    settle();
    let live: Value = serde_json::from_str(&np.stop()?)?;
    let html = Scratch::new("bursts.html");
    let out = run(&["report", "--from", recording.str(), "--format", "html", "-o", html.str()])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = fs::read_to_string(html.path())?;
    let section = page.split("<h2>").find(|s| s.starts_with("Microbursts")).expect("a section");
    let found = format!("<p>{} bursts found;", live["burst_count"]);
    assert!(section.contains(&found), "{found} not in {section}");
    let rates = live["burst_rates"].as_array().expect("burst_rates");
    let figures: Vec<&str> = section.split("<figure>").skip(1).collect();
    assert_eq!(figures.len(), rates.len(), "a chart per pod and direction");
    let mut bars = 0;
    for (figure, row) in figures.iter().zip(rates) {
        let (pod, dir) = (row["pod"].as_str().unwrap(), row["direction"].as_str().unwrap());
        let caption = between(figure, "<figcaption>", "</figcaption>").expect("caption");
        let dir_word = if dir == "rx" { "Rx" } else { "Tx" };
        assert!(
            caption.starts_with(&format!("{pod} {dir_word}: bins per packet rate")),
            "{caption}"
        );
        let ranges: Vec<u64> = row["rates"]["histogram"]
            .as_array()
            .expect("histogram")
            .iter()
            .map(|r| r[2].as_u64().expect("bins"))
            .collect();
        assert_eq!(ranges.iter().sum::<u64>(), row["rates"]["bins"].as_u64().unwrap(), "{row}");
        let max = ranges.iter().copied().max().unwrap_or(0).max(1) as f64;
        let expected: Vec<(String, f64)> = ranges
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (format!("bins, bar {}: {n}", i + 1), (*n as f64 / max * 170.0).max(1.0)))
            .collect();
        let drawn = bars_of(figure);
        let titles: Vec<&str> = drawn.iter().map(|d| d.0.as_str()).collect();
        let want: Vec<&str> = expected.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(titles, want, "{pod} {dir}: bars vs histogram");
        for (d, e) in drawn.iter().zip(&expected) {
            assert!(d.1, "{pod} {dir}: {} not in the one series' colour", d.0);
            assert!(
                (d.2 - e.1).abs() < 0.11,
                "{pod} {dir}: {} drawn {} high, not {}",
                d.0,
                d.2,
                e.1
            );
        }
        bars += drawn.len();
    }
    let rx = rates.iter().find(|r| r["pod"] == "pod-b" && r["direction"] == "rx");
    let rx = rx.unwrap_or_else(|| panic!("no pod-b rx rates: {rates:?}"));
    println!(
        "{} bursts; {} charts, {bars} bars; pod-b rx {}",
        live["burst_count"],
        figures.len(),
        rx["rates"]
    );
    // The smooth rate and the bursts fall in different ranges.
    assert!(rx["rates"]["histogram"].as_array().unwrap().iter().filter(|r| r[2] != 0).count() >= 2);
    assert!(live["burst_count"].as_u64().unwrap() > 0, "{live:#}");
    Ok(())
}

/// CRC-32 (IEEE), as a recording's frames carry it (docs/recording.md).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn a_replay_names_drops_as_the_recording_kernel_did() -> Result<()> {
    // A recording from a kernel whose enum skb_drop_reason calls NO_SOCKET something else:
    // the replay takes the names from the recording, not from the kernel it runs on.
    let (lab, _running, incident) = incident("closed-port")?;
    let recording = Scratch::new("names.np");
    let args = ["report", "--duration", "10m", "--events", "drops", "--format", "json"];
    let np = Running::start(&[&args[..], &["--record", recording.str()]].concat())?;
    (incident.provoke)(&lab)?;
    settle();
    let live: Value = serde_json::from_str(&np.stop()?)?;
    let bytes = fs::read(recording.path())?;
    // Rewrite the header frame's reason names, each frame with its CRC again.
    let (mut at, mut out, mut renamed) = (20, bytes[..20].to_vec(), 0);
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        let mut frame: Value = serde_json::from_slice(&bytes[at + 8..at + 8 + len])?;
        if let Some(core) = frame.pointer_mut("/header/reasons/core").and_then(Value::as_object_mut)
        {
            for name in core.values_mut().filter(|n| *n == "NO_SOCKET") {
                *name = "NO_SOCKET_ELSEWHERE".into();
                renamed += 1;
            }
        }
        let payload = serde_json::to_vec(&frame)?;
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        at += 8 + len;
    }
    assert_eq!(renamed, 1, "NO_SOCKET in the recording's reasons");
    let other = Scratch::new("names-other.np");
    fs::write(other.path(), &out)?;
    let replay = run(&["report", "--from", other.str(), "--format", "json"])?;
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    let replayed: Value = serde_json::from_slice(&replay.stdout)?;
    let reasons = |r: &Value, pod: &str| -> Vec<(String, u64)> {
        let rows = r["drops"].as_array().expect("drops").iter().filter(|d| d["pod"] == pod);
        rows.map(|d| (d["reason"].as_str().unwrap().to_owned(), d["count"].as_u64().unwrap()))
            .collect()
    };
    println!("live {:?}; replayed {:?}", reasons(&live, "pod-b"), reasons(&replayed, "pod-b"));
    assert_eq!(reasons(&live, "pod-b"), vec![("NO_SOCKET".to_owned(), 75)]);
    assert_eq!(reasons(&replayed, "pod-b"), vec![("NO_SOCKET_ELSEWHERE".to_owned(), 75)]);
    // Everything else as live.
    let text = |r: &Value| r.to_string().replace("NO_SOCKET_ELSEWHERE", "NO_SOCKET");
    assert_eq!(text(&replayed), text(&live));
    Ok(())
}

#[test]
fn broken_recordings_are_refused_with_what_is_wrong() -> Result<()> {
    require_root();
    let good = Scratch::new("short.np");
    let good = &good.0;
    let out =
        run(&["record", "-o", good.to_str().unwrap(), "--duration", "1s", "--events", "tcp"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = fs::read(good)?;
    let check = |name: &str, content: &[u8], says: &str| -> Result<()> {
        let path = Scratch::new(name);
        fs::write(path.path(), content)?;
        let out = run(&["report", "--from", path.str()])?;
        let err = String::from_utf8_lossy(&out.stderr);
        println!("{name}: {}", err.trim());
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(says), "{name}: expected `{says}` in: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        Ok(())
    };
    check("truncated.np", &bytes[..bytes.len() / 2], "truncated")?;
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x20;
    check("flipped.np", &flipped, "corrupt frame")?;
    check("foreign.np", b"{\"not\": \"a recording\"}\n", "not a netprobe recording")?;
    check("empty.np", b"", "not a netprobe recording")?;
    let out = run(&["report", "--from", "/nonexistent/incident.np"])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/incident.np"));
    Ok(())
}

#[test]
fn a_recording_stops_at_its_size_cap_and_says_so() -> Result<()> {
    let (lab, _server, _) = incident("port-exhaustion")?;
    let file = Scratch::new("capped.np");
    let path = file.str();
    let np = Running::start(&[
        "record",
        "-o",
        path,
        "--duration",
        "10m",
        "--events",
        "ports",
        "--max-size",
        "1MB",
    ])?;
    let b = lab.ip("pod-b").to_string();
    // Each EADDRNOTAVAIL is a recorded event of a few hundred bytes: far more than 1 MB.
    lab.sh_ok("pod-a", &format!("{} connect-loop {b} 5003 20000", labtool()))?;
    // At the cap netprobe ends the recording by itself.
    let (status, said) = np.exited()?;
    let size = fs::metadata(file.path())?.len();
    println!("{size} bytes; netprobe said: {said:?}");
    assert!(status.success(), "{said:?}");
    assert!(size <= 1_000_000, "{size} bytes written under a 1MB cap");
    assert!(said.iter().any(|l| l.contains("size cap")), "{said:?}");
    let out = run(&["report", "--from", path, "--format", "json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["complete"], false);
    assert!(report["note"].as_str().unwrap_or("").contains("size cap"), "{}", report["note"]);
    let failed = report["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["pod"] == "pod-a" && p["op"] == "connect" && p["errno"] == "EADDRNOTAVAIL")
        .and_then(|p| p["count"].as_u64())
        .unwrap_or_else(|| panic!("no pod-a EADDRNOTAVAIL count: {}", report["ports"]));
    assert!(failed > 1000, "{}", report["ports"]);
    Ok(())
}

/// The bars of the charts in the page's section whose heading starts with `heading`, one
/// chart per pod (its caption), checked against the report's timeline: a bar for every
/// non-zero value of every `metric` series whose label passes `label`, titled with that
/// value, in its series' colour, as high as its share of the chart's tallest stack. Returns
/// how many bars there are.
fn check_bars(
    page: &str,
    heading: &str,
    report: &Value,
    metric: &str,
    label: impl Fn(&str) -> bool,
) -> usize {
    let pod = |v: &Value| v["pod"].as_str().unwrap_or("").to_owned();
    let label_of = |v: &Value| v["label"].as_str().unwrap().to_owned();
    check_charts(page, heading, report, metric, label, pod, label_of)
}

/// Like [`check_bars`], with the chart a series is drawn in (its caption) and its name in
/// the bars' titles given.
fn check_charts(
    page: &str,
    heading: &str,
    report: &Value,
    metric: &str,
    label: impl Fn(&str) -> bool,
    chart: impl Fn(&Value) -> String,
    name_of: impl Fn(&Value) -> String,
) -> usize {
    let section = page
        .split("<h2>")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let section = section.split("</h2>").nth(1).unwrap();
    let series: Vec<&Value> = report["timeline"]["series"]
        .as_array()
        .expect("timeline series")
        .iter()
        .filter(|v| v["metric"] == metric && label(v["label"].as_str().unwrap_or("")))
        .collect();
    let mut bars = 0;
    let mut pods_charted = Vec::new();
    for figure in section.split("<figure>").skip(1) {
        let pod = between(figure, "<figcaption>", "</figcaption>").expect("caption");
        pods_charted.push(pod.to_owned());
        let mine: Vec<&&Value> = series.iter().filter(|v| chart(v) == pod).collect();
        let values = |v: &Value| -> Vec<u64> {
            v["values"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
        };
        let n = mine.iter().map(|v| values(v).len()).max().unwrap_or(0);
        let max = (0..n)
            .map(|i| mine.iter().map(|v| values(v).get(i).copied().unwrap_or(0)).sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        // Every bar as drawn, and as the timeline says it should be.
        let mut drawn = bars_of(figure);
        let mut expected: Vec<(String, bool, f64)> = Vec::new();
        for (k, v) in mine.iter().enumerate() {
            let name = name_of(v);
            for (i, x) in values(v).into_iter().enumerate().filter(|(_, x)| *x > 0) {
                let h = (x as f64 / max * 170.0).max(1.0);
                expected.push((format!("{name}, bar {}: {x}", i + 1), k == 0, h));
            }
        }
        let key = |a: &(String, bool, f64), b: &(String, bool, f64)| a.0.cmp(&b.0);
        drawn.sort_by(key);
        expected.sort_by(key);
        let titles = |v: &[(String, bool, f64)]| -> Vec<(String, bool)> {
            v.iter().map(|(t, f, _)| (t.clone(), *f)).collect()
        };
        assert_eq!(titles(&drawn), titles(&expected), "{pod}: bars vs timeline");
        for (d, e) in drawn.iter().zip(&expected) {
            assert!((d.2 - e.2).abs() < 0.11, "{pod}: {} drawn {} high, not {}", d.0, d.2, e.2);
        }
        bars += drawn.len();
    }
    let mut pods: Vec<String> = series.iter().map(|v| chart(v)).collect();
    pods.sort();
    pods.dedup();
    pods_charted.sort();
    assert_eq!(pods_charted, pods, "{heading}: one chart per pod with such series");
    bars
}

/// (title, in the first series' colour, height) of every bar of a chart.
fn bars_of(figure: &str) -> Vec<(String, bool, f64)> {
    figure
        .split("<rect ")
        .skip(1)
        .map(|r| {
            let attr = |a: &str| between(r, &format!("{a}=\""), "\"").expect(a).to_owned();
            let title = between(r, "<title>", "</title>").expect("title").to_owned();
            (title, attr("fill") == FIRST_SERIES_HEX, attr("height").parse().unwrap())
        })
        .collect()
}

/// The area of the first series' bars in the page's charts, shrunk and grown by a pixel on
/// every side: the pixels wholly inside them, and all they can touch.
fn first_series_area(page: &str) -> (f64, f64) {
    let (mut inner, mut outer) = (0.0, 0.0);
    for r in page.split("<rect ").skip(1) {
        let attr =
            |a: &str| -> f64 { between(r, &format!("{a}=\""), "\"").unwrap().parse().unwrap() };
        if between(r, "fill=\"", "\"") != Some(FIRST_SERIES_HEX) {
            continue;
        }
        let (w, h) = (attr("width"), attr("height"));
        inner += (w - 2.0).max(0.0) * (h - 2.0).max(0.0);
        outer += (w + 2.0) * (h + 2.0);
    }
    (inner, outer)
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    Some(&s[from..from + s[from..].find(end)?])
}

/// A full-page screenshot of `page` by headless Chromium, into `shot`.
fn screenshot(page: &std::path::Path, shot: &std::path::Path) -> Result<()> {
    let profile = Scratch::new("chromium-profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,6000",
            &format!("--user-data-dir={}", profile.0.display()),
            &format!("--screenshot={}", shot.display()),
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .context("running chromium: scripts/install-deps installs it")?;
    if !shot.exists() {
        bail!("chromium made no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// How many pixels of `rgb` the PNG has, and its width.
fn pixels_of(png_path: &std::path::Path, rgb: [u8; 3]) -> Result<(usize, usize)> {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(png_path)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("png size")?];
    let info = reader.next_frame(&mut buf)?;
    let step = info.color_type.samples();
    let found = buf[..info.buffer_size()].chunks(step).filter(|p| p[..3] == rgb).count();
    Ok((found, info.width as usize))
}
