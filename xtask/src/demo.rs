//! The README's first command: everything from build to report on a throwaway lab.

use std::{
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use netprobe_tests::{
    cri::{Cri, Pod, SOCKET},
    lab::Lab,
    traffic::{firewall, tcp_closed, udp},
};

pub const PODS: [&str; 3] = ["pod-a", "pod-b", "pod-c"];
/// The Kubernetes pods the demo's pods are, when containerd can run here.
const K8S: [(&str, &str, &str); 3] = [
    ("shop", "checkout-7d9f8c-x2x", "checkout"),
    ("shop", "cart-5b6c4-qk8", "cart"),
    ("blog", "cron-29041-zt7", "cron"),
];

/// The demo's pods: CRI sandboxes on a real containerd when it runs here, else plain
/// network namespaces. Says which.
fn pods() -> Result<(Lab, Option<Cri>, Vec<String>)> {
    let cri = match Cri::start() {
        Ok(cri) => cri,
        Err(e) => {
            step(&format!("containerd cannot run here ({e:#}); plain network namespaces instead"));
            return Ok((Lab::up(&PODS)?, None, PODS.map(String::from).to_vec()));
        }
    };
    let mut sandboxes: Vec<Pod> = Vec::new();
    for (ns, name, app) in K8S {
        sandboxes.push(cri.add(ns, name, &[("app", app)], false)?);
    }
    let mut view = Vec::new();
    for (alias, p) in PODS.iter().zip(&sandboxes) {
        let ip = match p.ip {
            Some(std::net::IpAddr::V4(ip)) => ip,
            _ => bail!("{}/{} has no IPv4 address", p.namespace, p.name),
        };
        view.push((*alias, p.netns.clone().context("a netns")?, ip));
    }
    let refs: Vec<(&str, &std::path::Path, std::net::Ipv4Addr)> =
        view.iter().map(|(a, n, ip)| (*a, n.as_path(), *ip)).collect();
    let names = K8S.iter().map(|(ns, name, _)| format!("{ns}/{name}")).collect();
    Ok((Lab::on_cri(&refs)?, Some(cri), names))
}

pub fn run() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the demo creates network namespaces and loads BPF programs: run it as root");
    }
    step("building netprobe (release)");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "netprobe"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/netprobe");

    step("lab: three pods; nft drops :5353 in the first");
    let (lab, cri, names) = pods()?;
    let socket = if cri.is_some() { SOCKET } else { "/nonexistent" };
    match &cri {
        Some(_) => {
            println!("Kubernetes pods on a real containerd (CRI), named {}", names.join(", "))
        }
        None => println!("network namespaces {}", names.join(", ")),
    }
    let np = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(["--cri-socket", socket]).args(args);
        c
    };

    step("netprobe doctor");
    np(&["doctor"]).status()?;

    firewall(&lab, "pod-a", 5353)?;
    let (a, b) = (lab.ip("pod-a").to_string(), lab.ip("pod-b").to_string());
    // Let the pods' own interface-up chatter (IPv6 multicast) pass before watching.
    thread::sleep(Duration::from_secs(2));

    step(&format!(
        "netprobe watch --pod {} --duration 4s, while the other two connect to its closed ports and the third sends to the first's firewalled port",
        names[1]
    ));
    let watch = np(&["watch", "--pod", &names[1], "--duration", "4s"])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()?;
    thread::sleep(Duration::from_millis(1500));
    tcp_closed(&lab, "pod-a", "pod-b", 8080, 3)?;
    udp(&lab, "pod-a", &b, 8080, 3)?;
    udp(&lab, "pod-c", &a, 5353, 3)?;
    tcp_closed(&lab, "pod-c", "pod-b", 9090, 2)?;
    watch.wait_with_output()?;

    let target = concat!(env!("CARGO_MANIFEST_DIR"), "/../target");
    let (recording, html) = (format!("{target}/demo.np"), format!("{target}/demo-report.html"));
    step("netprobe report --duration 4s --record target/demo.np, same traffic, more of it");
    let report = np(&["report", "--duration", "4s", "--record", &recording]).spawn()?;
    thread::sleep(Duration::from_millis(1500));
    tcp_closed(&lab, "pod-a", "pod-b", 8080, 20)?;
    udp(&lab, "pod-a", &b, 8080, 20)?;
    udp(&lab, "pod-c", &a, 5353, 15)?;
    report.wait_with_output()?;

    step("netprobe report --from target/demo.np --format html -o target/demo-report.html");
    let status = Command::new(bin)
        .args(["report", "--from", &recording, "--format", "html", "-o", &html])
        .status()?;
    if !status.success() {
        bail!("the HTML report failed");
    }
    println!("open {html} in a browser: findings and charts, one self-contained file");

    step("tearing the lab down");
    drop(lab);
    match cri {
        Some(cri) => cri.stop(),
        None => Ok(()),
    }
}

fn step(what: &str) {
    println!("\n==> {what}");
}
