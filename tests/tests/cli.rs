//! What users meet at the edges: errors that say what to do, and a clean detach.

mod common;

use std::{fs, path::Path, process::Command, thread, time::Duration};

use common::require_root;
use netprobe_tests::{
    lab::Lab,
    netprobe::{self, Running},
};

#[test]
fn bad_durations_are_refused_with_the_accepted_form() {
    let out = netprobe::run(&["report", "--duration", "10parsecs"]).unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a unit") && err.contains("10s"), "{err}");
}

#[test]
fn report_arguments_that_cannot_work_are_refused_before_collecting() {
    let cases: [(&[&str], &str); 4] = [
        (&["report", "--duration", "5s", "--format", "html"], "--output"),
        (&["report"], "--duration"),
        (&["report", "--from", "x.np", "--duration", "5s"], "cannot be used with"),
        (&["record", "-o", "x.np", "--duration", "5s", "--max-size", "10KB"], "at least 1MB"),
    ];
    for (args, says) in cases {
        let out = netprobe::run(args).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected `{says}` in {err}");
    }
}

#[test]
fn unknown_pods_list_the_known_ones() -> anyhow::Result<()> {
    require_root();
    let _lab = Lab::up(&["pod-a", "pod-b"])?;
    let out = netprobe::run(&["watch", "--pod", "pod-zz"])?;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no pod named `pod-zz`"), "{err}");
    assert!(err.contains("pod-a") && err.contains("pod-b") && err.contains("host"), "{err}");
    Ok(())
}

#[test]
fn unprivileged_runs_name_the_missing_capabilities() {
    require_root();
    // setpriv (util-linux) drops to nobody with no capabilities.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(netprobe::bin())
        .args(["watch", "--duration", "1s"])
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_BPF") && err.contains("CAP_PERFMON"), "{err}");
}

#[test]
fn doctor_reports_the_tier_in_use() {
    require_root();
    let out = netprobe::run(&["doctor"]).unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<- in use"), "{text}");
    assert!(text.contains("fentry") && text.contains("kprobe"), "{text}");
}

/// IDs in /proc/<pid>/fdinfo of BPF program and link file descriptors.
fn bpf_ids(pid: u32, key: &str) -> Vec<u32> {
    let dir = format!("/proc/{pid}/fdinfo");
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|info| info.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok()))
        .collect()
}

fn exists(kind: &str, id: u32) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .output()
        .expect("bpftool (scripts/install-deps installs it)")
        .status
        .success()
}

#[test]
fn sigterm_detaches_every_program_and_link() -> anyhow::Result<()> {
    require_root();
    let np = Running::start(&["watch"])?;
    let (progs, links) = (bpf_ids(np.pid(), "prog_id:"), bpf_ids(np.pid(), "link_id:"));
    assert!(!progs.is_empty() && !links.is_empty(), "attached: progs {progs:?} links {links:?}");
    assert!(progs.iter().all(|&id| exists("prog", id)));
    let (status, _) = np.stop_with(libc::SIGTERM)?;
    assert!(status.success(), "{status}");
    // Freeing is deferred past the fd close; give the kernel a moment.
    for _ in 0..50 {
        if progs.iter().all(|&id| !exists("prog", id))
            && links.iter().all(|&id| !exists("link", id))
        {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    for id in &progs {
        assert!(!exists("prog", *id), "program {id} still loaded after SIGTERM");
    }
    for id in &links {
        assert!(!exists("link", *id), "link {id} still attached after SIGTERM");
    }
    let pinned = Path::new("/sys/fs/bpf");
    let leftovers: Vec<_> =
        fs::read_dir(pinned).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().contains("netprobe")), "{leftovers:?}");
    Ok(())
}
