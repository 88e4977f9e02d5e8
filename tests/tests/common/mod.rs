//! Shared by the privileged test files.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::{thread, time::Duration};

use netprobe_tests::{
    incidents::{self, Incident},
    lab::{Background, Lab},
};

/// These tests load BPF programs and create namespaces; unprivileged they must fail loudly,
/// not pass.
pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "privileged integration test: run as root (the unit tests are `cargo test -p netprobe`)"
    );
}

/// The lab of an incident, set up: the lab, what setup left running, and the incident.
pub fn incident(name: &str) -> anyhow::Result<(Lab, Vec<Background>, &'static Incident)> {
    require_root();
    let incident = incidents::find(name).expect("a known incident");
    let lab = Lab::up(incident.pods)?;
    let running = (incident.setup)(&lab)?;
    Ok((lab, running, incident))
}

/// Lets the kernel finish delivering and netprobe drain (it drains every 100 ms).
pub fn settle() {
    thread::sleep(Duration::from_millis(400));
}

/// The incident's finding ranks first and names the pod at fault; no finding names a pod the
/// incident does not involve.
pub fn assert_finding(report: &serde_json::Value, incident: &Incident) {
    assert_finding_named(report, incident, str::to_owned)
}

/// [`assert_finding`] where the incident's pods go by other names (`pod-b` is `shop/api`).
pub fn assert_finding_named(
    report: &serde_json::Value,
    incident: &Incident,
    name: impl Fn(&str) -> String,
) {
    let involved: Vec<String> = incident.involved.iter().map(|p| name(p)).collect();
    let findings = report["findings"].as_array().expect("findings in the report");
    let ids: Vec<&str> = findings.iter().filter_map(|f| f["id"].as_str()).collect();
    let first = findings.first().unwrap_or_else(|| panic!("{}: no findings", incident.name));
    assert_eq!(first["id"], incident.finding, "{}: findings {ids:?}", incident.name);
    let pods = |f: &serde_json::Value| -> Vec<String> {
        f["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        pods(first).iter().any(|p| *p == involved[0]),
        "{}: the first finding names {:?}, not {}",
        incident.name,
        pods(first),
        involved[0]
    );
    // Where the kernel keeps a counter for it, that counter must agree with netprobe's.
    let no_kernel_counter = ["netfilter_policy_drop", "ephemeral_port_exhaustion", "bind_conflict"];
    let expected =
        if no_kernel_counter.contains(&incident.finding) { "measured" } else { "confirmed" };
    assert_eq!(first["confidence"], expected, "{}: {first:#}", incident.name);
    for f in findings {
        for pod in pods(f) {
            assert!(
                involved.contains(&pod),
                "{}: finding {} names {pod}, which the incident does not involve",
                incident.name,
                f["id"]
            );
        }
    }
}
