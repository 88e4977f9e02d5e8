//! `cargo xtask lab incident [NAME]`: one incident of shared/incidents/, reproduced in a
//! throwaway lab under `netprobe report`, to rehearse netprobe on a known fault.

use std::{process::Command, thread, time::Duration};

use anyhow::{bail, Context, Result};
use netprobe_tests::{incidents, lab::Lab, netprobe::Running};

pub fn run(name: Option<&str>) -> Result<()> {
    let Some(name) = name else {
        println!("Incidents (cargo xtask lab incident NAME):");
        for i in incidents::ALL {
            println!("  {:<18} {}", i.name, i.about);
        }
        return Ok(());
    };
    let Some(incident) = incidents::find(name) else {
        let known: Vec<&str> = incidents::ALL.iter().map(|i| i.name).collect();
        bail!("no incident `{name}`; known: {}", known.join(", "));
    };
    if unsafe { libc::geteuid() } != 0 {
        bail!("incidents create network namespaces and load BPF programs: run as root");
    }
    // The lab's tools are found beside this binary, so build them in its profile.
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "netprobe",
            "-p",
            "netprobe-tests",
            "--bin",
            "netprobe",
            "--bin",
            "labtool",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    println!("==> {}: {}", incident.name, incident.about);
    let lab = Lab::up(incident.pods)?;
    let _running = (incident.setup)(&lab)?;
    println!("==> netprobe report --events {} while the fault happens", incident.events);
    let mut args = vec!["report", "--duration", "10m", "--events", incident.events];
    args.extend(incident.report_args);
    let np = Running::start(&args)?;
    (incident.provoke)(&lab)?;
    // Long enough for the per-pod polls (every second) to see the end of it.
    thread::sleep(Duration::from_millis(1500));
    print!("{}", np.stop()?);
    println!("==> tearing the lab down (sysctls restored)");
    Ok(())
}
