//! The README's first command: everything from build to report on a throwaway lab.

use std::{
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use netprobe_tests::{
    lab::Lab,
    traffic::{firewall, tcp_closed, udp},
};

pub const PODS: [&str; 3] = ["pod-a", "pod-b", "pod-c"];

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

    step("netprobe doctor");
    Command::new(bin).arg("doctor").status()?;

    step("lab: pod-a, pod-b, pod-c on bridge np-br0; nft drops :5353 in pod-a");
    let lab = Lab::up(&PODS)?;
    firewall(&lab, "pod-a", 5353)?;
    let (a, b) = (lab.ip("pod-a").to_string(), lab.ip("pod-b").to_string());
    // Let the pods' own interface-up chatter (IPv6 multicast) pass before watching.
    thread::sleep(Duration::from_secs(2));

    step("netprobe watch --pod pod-b --duration 4s, while pod-a and pod-c connect to closed ports in pod-b and pod-c sends to pod-a's firewalled port");
    let watch = Command::new(bin)
        .args(["watch", "--pod", "pod-b", "--duration", "4s"])
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
    let report =
        Command::new(bin).args(["report", "--duration", "4s", "--record", &recording]).spawn()?;
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
    Ok(())
}

fn step(what: &str) {
    println!("\n==> {what}");
}
