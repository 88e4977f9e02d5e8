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
