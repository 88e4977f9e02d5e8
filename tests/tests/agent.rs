//! `netprobe agent` scraped by a real Prometheus in the lab: per-pod counts through PromQL
//! equal the pod's own kernel counters; the exposition passes promtool; findings, reports
//! and recordings come over HTTP; bad requests get a 4xx that says why.

mod common;

use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use common::require_root;
use netprobe_tests::{
    lab::Lab,
    netprobe::{self, Running},
    prometheus::Prometheus,
    traffic::{tcp_closed, udp},
};

/// The agent's address, from its "serving http://ADDR/metrics" line.
fn address(agent: &Running) -> String {
    let line =
        agent.stderr_seen.iter().find(|l| l.contains("serving http://")).expect("the serving line");
    let rest = line.split("http://").nth(1).expect("an address");
    rest.split('/').next().expect("host:port").to_owned()
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = ureq::get(url);
    if let Some(t) = token {
        r = r.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp =
        r.config().http_status_as_error(false).build().call().expect("the agent answers");
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
}

/// promtool 2.42 reads only the classic text format, where a counter family is named with its
/// `_total`; the agent serves OpenMetrics (which Prometheus scrapes as is). This renames the
/// counter families for the linter, and nothing else.
fn classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    openmetrics
        .lines()
        .filter(|l| *l != "# EOF")
        .map(|l| {
            for c in &counters {
                for head in ["# HELP ", "# TYPE "] {
                    if let Some(rest) = l.strip_prefix(&format!("{head}{c} ")) {
                        return format!("{head}{c}_total {rest}\n");
                    }
                }
            }
            format!("{l}\n")
        })
        .collect()
}

#[test]
fn prometheus_sees_exact_per_pod_counts_and_the_api_answers() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let token_file = std::env::temp_dir().join(format!("netprobe-token-{}", std::process::id()));
    std::fs::write(&token_file, "s3cret\n")?;
    let agent = Running::start(&[
        "agent",
        "--listen",
        "127.0.0.1:0",
        "--retain",
        "2m",
        "--api-token-file",
        token_file.to_str().expect("utf-8"),
    ]);
    let _ = std::fs::remove_file(&token_file);
    let agent = agent?;
    let addr = address(&agent);
    let base = format!("http://{addr}");
    let prometheus = Prometheus::start(&addr)?;

    // Counted from the agent's start, against the pod's own counters over the same time.
    let no_ports = lab.snmp("pod-b", "Udp", "NoPorts")?;
    let out_rsts = lab.snmp("pod-b", "Tcp", "OutRsts")?;
    let b = lab.ip("pod-b").to_string();
    udp(&lab, "pod-a", &b, 8080, 40)?;
    tcp_closed(&lab, "pod-a", "pod-b", 8080, 15)?;
    let no_ports = lab.snmp("pod-b", "Udp", "NoPorts")? - no_ports;
    let out_rsts = lab.snmp("pod-b", "Tcp", "OutRsts")? - out_rsts;
    assert_eq!((no_ports, out_rsts), (40, 15), "the kernel saw the traffic");

    let within = Duration::from_secs(30);
    // A SYN to a closed port is a NO_SOCKET drop too, answered with one reset.
    let drops = r#"netprobe_drops_total{pod="pod-b",reason="NO_SOCKET"}"#;
    let want = (no_ports + out_rsts) as f64;
    assert_eq!(prometheus.wait_for(drops, want, within)?, Some(want), "{}", prometheus.log());
    let resets = r#"netprobe_tcp_events_total{pod="pod-b",event="rst_sent"}"#;
    assert_eq!(prometheus.wait_for(resets, out_rsts as f64, within)?, Some(out_rsts as f64));
    let kernel = r#"netprobe_listen_overflows_total{pod="pod-b"}"#;
    assert_eq!(prometheus.query(kernel)?, Some(0.0), "the pod's own counters are exported");

    let (status, text) = get(&format!("{base}/metrics"), None);
    assert_eq!(status, 200);
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    lint.stdin.take().expect("piped").write_all(classic(&text).as_bytes())?;
    let lint = lint.wait_with_output()?;
    let said = String::from_utf8_lossy(&lint.stdout) + String::from_utf8_lossy(&lint.stderr);
    assert!(lint.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");

    // Every metric the agent exports is documented, under the name Prometheus stores.
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/agent.md"))?;
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').expect("name and type");
        let stored = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
        assert!(docs.contains(&format!("`{stored}`")), "docs/agent.md does not list {stored}");
    }

    // The API: the token, the findings of the window, bad requests.
    assert_eq!(get(&format!("{base}/healthz"), None).0, 200);
    assert_eq!(get(&format!("{base}/readyz"), None).0, 200);
    assert_eq!(get(&format!("{base}/api/v1/findings?window=1m"), None).0, 401);
    let (status, body) = get(&format!("{base}/api/v1/findings?window=1m"), Some("s3cret"));
    assert_eq!(status, 200, "{body}");
    let findings: serde_json::Value = serde_json::from_str(&body)?;
    let first = &findings["findings"][0];
    assert_eq!(
        (first["id"].as_str(), first["pods"][0].as_str()),
        (Some("packet_drops"), Some("pod-b"))
    );
    for (query, status, says) in [
        ("window=1h", 400, "keeps only the last 120s"),
        ("window=soon", 400, "window"),
        ("window=1m&pod=pod-z", 404, "no pod named `pod-z`"),
        ("window=1m&format=pdf", 400, "expected json, html or text"),
    ] {
        let (got, body) = get(&format!("{base}/api/v1/report?{query}"), Some("s3cret"));
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }

    // The CLI asks the agent: the same report as a live one over that window.
    let token = std::env::temp_dir().join(format!("netprobe-token-cli-{}", std::process::id()));
    std::fs::write(&token, "s3cret\n")?;
    let args =
        ["report", "--agent", &base, "--window", "1m", "--format", "json", "--api-token-file"];
    let out = netprobe::run(&[&args[..], &[token.to_str().expect("utf-8")]].concat());
    let _ = std::fs::remove_file(&token);
    let out = out?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let pod_b_no_socket: u64 = report["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .filter(|d| d["pod"] == "pod-b" && d["reason"] == "NO_SOCKET")
        .map(|d| d["count"].as_u64().expect("a count"))
        .sum();
    assert_eq!(pod_b_no_socket, no_ports + out_rsts);
    assert_eq!(report["findings"][0]["id"], "packet_drops");

    let (status, _) = agent.stop_with(libc::SIGTERM)?;
    assert!(status.success(), "the agent exits cleanly on SIGTERM: {status}");
    Ok(())
}

/// The value of an unlabelled or exactly labelled sample line of an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn a_deleted_pods_counts_leave_the_kernel_maps_and_the_metrics_after_the_grace(
) -> anyhow::Result<()> {
    require_root();
    let mut lab = Lab::up(&["pod-a", "pod-b"])?;
    let agent = Running::start(&["agent", "--listen", "127.0.0.1:0", "--pod-grace", "2s"])?;
    let base = format!("http://{}", address(&agent));
    lab.add("pod-c")?;
    // The agent names and counts pods that start later.
    std::thread::sleep(Duration::from_millis(1500));
    udp(&lab, "pod-a", &lab.ip("pod-c").to_string(), 8080, 12)?;
    let series = r#"netprobe_drops_total{namespace="",pod="pod-c",reason="NO_SOCKET"}"#;
    let entries = r#"netprobe_map_entries{map="drops"}"#;
    let wait = |want: &dyn Fn(&str) -> bool, what: &str| -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (_, text) = get(&format!("{base}/metrics"), None);
            if want(&text) {
                return Ok(text);
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "{what}:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let before = wait(&|t| sample(t, series) == Some(12.0), "pod-c's 12 drops")?;
    let keys_before = sample(&before, entries).expect("map entries");
    let status = Command::new("ip").args(["netns", "del", "pod-c"]).status()?;
    assert!(status.success());
    // Its series leave the exposition, and its keys the kernel map, a grace after it went.
    let gone = |t: &str| sample(t, series).is_none() && sample(t, entries) < Some(keys_before);
    wait(&gone, "pod-c's series and kernel keys gone after the grace")?;
    let (status, _) = agent.stop_with(libc::SIGTERM)?;
    assert!(status.success());
    Ok(())
}

#[test]
fn with_bursts_the_agent_exports_burst_counts_and_per_bin_rates_per_pod() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sink = lab.spawn("pod-b", &netprobe_tests::incidents::labtool(), &["udp-sink", "9000"])?;
    let agent =
        Running::start(&["agent", "--listen", "127.0.0.1:0", "--events", "drops,softnet,bursts"])?;
    let base = format!("http://{}", address(&agent));
    // Bursts of 3000 back-to-back datagrams over silence: far above 4x the average rate.
    let b = lab.ip("pod-b");
    let tool = netprobe_tests::incidents::labtool();
    for _ in 0..5 {
        lab.sh_ok("pod-a", &format!("{tool} blast {b} 9000 3000"))?;
        std::thread::sleep(Duration::from_millis(400));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (_, text) = get(&format!("{base}/metrics"), None);
        let bursts = sample(&text, r#"netprobe_bursts_total{namespace="",pod="pod-b"}"#);
        let quiet = sample(
            &text,
            r#"netprobe_burst_bin_rate_pps_bucket{le="1000.0",namespace="",pod="pod-b",direction="tx"}"#,
        );
        let all = sample(
            &text,
            r#"netprobe_burst_bin_rate_pps_count{namespace="",pod="pod-b",direction="tx"}"#,
        );
        // The rates are handed to /metrics once a second: wait for the bursts' bins.
        if bursts.is_some_and(|n| n >= 1.0) && quiet < all {
            break text;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "no bursts for pod-b:\n{text}");
        std::thread::sleep(Duration::from_millis(300));
    };
    // A histogram of per-bin rates: every bin counted once, the buckets cumulative, some bins
    // far busier than the quiet ones. On the node, a pod's bins are its host-side veth's: what
    // it receives is that veth's tx.
    let bucket = |le: &str| {
        let series = format!(
            r#"netprobe_burst_bin_rate_pps_bucket{{le="{le}",namespace="",pod="pod-b",direction="tx"}}"#
        );
        sample(&text, &series)
    };
    let count = sample(
        &text,
        r#"netprobe_burst_bin_rate_pps_count{namespace="",pod="pod-b",direction="tx"}"#,
    )
    .expect("a bin count");
    assert_eq!(bucket("+Inf"), Some(count), "{text}");
    let bounds = ["1000.0", "3000.0", "10000.0", "30000.0", "100000.0", "300000.0", "+Inf"];
    let cumulative: Vec<f64> = bounds.iter().map(|le| bucket(le).expect("a bucket")).collect();
    assert!(cumulative.windows(2).all(|w| w[0] <= w[1]), "{cumulative:?}");
    assert!(cumulative[0] < count, "the bursts' bins are above 1000 pps: {cumulative:?}");
    let lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("piped").write_all(classic(&text).as_bytes())?;
            c.wait_with_output()
        })?;
    let said = String::from_utf8_lossy(&lint.stdout) + String::from_utf8_lossy(&lint.stderr);
    assert!(lint.status.success() && said.trim().is_empty(), "promtool: {said}");
    let (status, _) = agent.stop_with(libc::SIGTERM)?;
    assert!(status.success());
    Ok(())
}
