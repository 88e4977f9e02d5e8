//! `netprobe report` as a whole: no findings without a fault, the same report from a
//! recording as live, the HTML report drawn by a real browser, broken recordings refused.

mod common;

use std::{fs, path::PathBuf, process::Command, thread, time::Duration};

use anyhow::{bail, Context, Result};
use common::{assert_finding, incident, require_root, settle};
use netprobe_tests::{
    incidents::labtool,
    lab::Lab,
    netprobe::{run, Running},
};
use serde_json::Value;

/// The first colour of the HTML report's palette: every chart's first series.
const FIRST_SERIES: [u8; 3] = [0xd6, 0x27, 0x28];

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("netprobe-test-{}-{name}", std::process::id()))
}

#[test]
fn healthy_traffic_gives_no_findings() -> Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _server = lab.spawn("pod-b", &labtool(), &["sink", "5010"])?;
    thread::sleep(Duration::from_millis(300));
    let np = Running::start(&["report", "--duration", "10m", "--format", "json"])?;
    let b = lab.ip("pod-b").to_string();
    lab.sh_ok("pod-a", &format!("timeout 30 {} send {b} 5010 4000000", labtool()))?;
    // A second for the per-pod counters to be polled after the transfer.
    thread::sleep(Duration::from_millis(1200));
    let report: Value = serde_json::from_str(&Running::stop(np)?)?;
    let tcp_sent: u64 = report["kernel"]
        .as_array()
        .expect("kernel counters")
        .iter()
        .map(|k| k["tcp_out_segs"].as_u64().unwrap_or(0))
        .sum();
    println!("{} TCP segments sent; findings: {}", tcp_sent, report["findings"]);
    assert!(tcp_sent > 1000, "the transfer did not happen: {report:#}");
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    // Every default family runs on this kernel.
    assert_eq!(report["unavailable"], serde_json::json!([]), "{report:#}");
    Ok(())
}

#[test]
fn a_recording_gives_the_live_report_and_its_html_draws_in_chromium() -> Result<()> {
    let (lab, _running, incident) = incident("lossy-path")?;
    let recording = scratch("lossy.np");
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
        fs::metadata(&recording)?.len(),
        live["findings"]
    );
    assert_eq!(replayed, live, "the replay differs from the live report");

    let html = scratch("report.html");
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
    let page = fs::read_to_string(&html)?;
    assert!(!page.contains("http://") && !page.contains("https://"), "the page links out");
    assert!(page.contains("retransmit_storm"));
    // Drops of pod-b (its nft rule) and retransmits of pod-a.
    assert!(page.matches("<svg").count() >= 2, "too few charts");

    let shot = screenshot(&html)?;
    let (drawn, width) = pixels_of(&shot, FIRST_SERIES)?;
    // Where the target directory is, keep the screenshot to look at.
    let keep = netprobe_tests::netprobe::bin().with_file_name("report-screenshot.png");
    fs::copy(&shot, &keep)?;
    println!("{drawn} pixels of the first series' colour; screenshot at {}", keep.display());
    assert!(drawn > 2 * width, "the charts' bars are not on the page ({drawn} pixels)");
    for f in [recording, html, shot] {
        let _ = fs::remove_file(f);
    }
    Ok(())
}

#[test]
fn broken_recordings_are_refused_with_what_is_wrong() -> Result<()> {
    require_root();
    let good = scratch("short.np");
    let out =
        run(&["record", "-o", good.to_str().unwrap(), "--duration", "1s", "--events", "tcp"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = fs::read(&good)?;
    let check = |name: &str, content: &[u8], says: &str| -> Result<()> {
        let path = scratch(name);
        fs::write(&path, content)?;
        let out = run(&["report", "--from", path.to_str().unwrap()])?;
        let err = String::from_utf8_lossy(&out.stderr);
        println!("{name}: {}", err.trim());
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(says), "{name}: expected `{says}` in: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        fs::remove_file(path)?;
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
    fs::remove_file(good)?;
    Ok(())
}

#[test]
fn a_recording_stops_at_its_size_cap_and_says_so() -> Result<()> {
    let (lab, _server, _) = incident("port-exhaustion")?;
    let file = scratch("capped.np");
    let path = file.to_str().unwrap();
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
    let size = fs::metadata(&file)?.len();
    println!("{size} bytes; netprobe said: {said:?}");
    assert!(status.success(), "{said:?}");
    assert!(size <= 1_000_000, "{size} bytes written under a 1MB cap");
    assert!(said.iter().any(|l| l.contains("size cap")), "{said:?}");
    let out = run(&["report", "--from", path, "--format", "json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["complete"], false);
    assert!(report["note"].as_str().unwrap_or("").contains("size cap"), "{}", report["note"]);
    assert!(report["ports"][0]["count"].as_u64().unwrap_or(0) > 1000, "{}", report["ports"]);
    fs::remove_file(file)?;
    Ok(())
}

/// A full-page screenshot of `page` by headless Chromium.
fn screenshot(page: &std::path::Path) -> Result<PathBuf> {
    let shot = scratch("report.png");
    let profile = scratch("chromium-profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,3000",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", shot.display()),
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .context("running chromium: scripts/install-deps installs it")?;
    let _ = fs::remove_dir_all(&profile);
    if !shot.exists() {
        bail!("chromium made no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(shot)
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
