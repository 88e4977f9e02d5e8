//! Removing everything a containerd of the harness left: its sandboxes (through CRI while it
//! still answers), the daemon, its shims and their pause processes (shims outlive
//! containerd, and pauses outlive their shims), mounts, network namespaces, CNI state and the
//! bridge. Each step runs even when an earlier one failed; the errors are reported together.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{
    image::{run, sha256},
    BRIDGE, CGROUP_PARENT, DIR, NETWORK, SOCKET,
};

/// Where the harness records each pod's netns path, so that a killed run's namespaces are
/// found without containerd.
pub(super) const NETNS_RECORDS: &str = "/run/netprobe-cri/netns";
const CNI_RESULTS: &str = "/var/lib/cni/results";
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// Removes everything; safe to call at any time, with or without a running containerd.
pub fn all() -> Result<()> {
    let mut errors = Vec::new();
    let mut step = |what: &str, r: Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{what}: {e:#}"));
        }
    };
    // Through CRI first: that is what frees IPAM addresses and deletes veths cleanly. A
    // test may have left containerd frozen. What this cannot remove, the steps below force.
    if !daemons().is_empty() {
        for pid in daemons() {
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        if let Err(e) = super::remove_all_sandboxes() {
            eprintln!("cri cleanup: through CRI: {e:#}; forcing");
        }
    }
    let ids = task_ids();
    step("stopping containerd", kill_and_wait(&daemons()));
    step("stopping shims", kill_and_wait(&shims()));
    for id in &ids {
        step(&format!("runc delete {id}"), runc_delete(id));
    }
    step("netns", remove_recorded_netns());
    step("CNI results", remove_cni_results(&ids));
    step("cgroups", remove_cgroups());
    step("mounts", unmount_under(Path::new(DIR)));
    step("shim sockets", remove_shim_sockets(&ids));
    step("bridge", delete_bridge());
    if Path::new(DIR).exists() {
        step("state directory", fs::remove_dir_all(DIR).map_err(Into::into));
    }
    let left = leftovers();
    if !left.is_empty() {
        errors.push(format!("left behind: {}", left.join(", ")));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("cri cleanup: {}", errors.join("; "))
    }
}

/// What a harness run must not leave behind: empty when everything is gone.
pub fn leftovers() -> Vec<String> {
    let mut left = Vec::new();
    for pid in daemons() {
        left.push(format!("containerd pid {pid}"));
    }
    for pid in shims() {
        left.push(format!("shim pid {pid}"));
    }
    for id in task_ids() {
        left.push(format!("sandbox task {id}"));
    }
    if Path::new("/sys/class/net").join(BRIDGE).exists() {
        left.push(format!("bridge {BRIDGE}"));
    }
    for r in cni_results(&task_ids()) {
        left.push(format!("CNI result {}", r.display()));
    }
    for m in mounts_under(Path::new(DIR)) {
        left.push(format!("mount {}", m.display()));
    }
    for c in cgroups() {
        left.push(format!("cgroup {}", c.display()));
    }
    if Path::new(DIR).exists() {
        left.push(format!("directory {DIR}"));
    }
    left
}

/// Our containerd's pid: its command line names our config.
pub fn daemons() -> Vec<i32> {
    processes(&format!("--config\0{DIR}/config.toml"))
}

/// Our shims: their command line names our containerd's socket.
fn shims() -> Vec<i32> {
    processes(&format!("-address\0{SOCKET}"))
}

/// Live (not zombie) processes whose NUL-separated command line contains `needle`.
fn processes(needle: &str) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(needle) && alive(*pid)
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised comm; Z and X are gone but for the reaping.
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

/// SIGTERM, then SIGKILL for whatever is still there after 2 s.
fn kill_and_wait(pids: &[i32]) -> Result<()> {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        for &pid in pids {
            unsafe { libc::kill(pid, signal) };
        }
        let start = Instant::now();
        while pids.iter().any(|&p| alive(p)) && start.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(20));
        }
    }
    let left: Vec<_> = pids.iter().filter(|&&p| alive(p)).collect();
    if left.is_empty() {
        Ok(())
    } else {
        bail!("still running after SIGKILL: {left:?}")
    }
}

/// Sandbox ids that have a runc state or a shim bundle under the harness's directory.
fn task_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for dir in
        [format!("{DIR}/runc/k8s.io"), format!("{DIR}/state/io.containerd.runtime.v2.task/k8s.io")]
    {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Kills a sandbox's pause process and removes its cgroups (`--force`: even if running).
fn runc_delete(id: &str) -> Result<()> {
    let root = format!("{DIR}/runc/k8s.io");
    if !Path::new(&root).join(id).exists() {
        return Ok(());
    }
    run(Command::new("runc").args(["--root", &root, "delete", "--force", id]))
}

fn remove_recorded_netns() -> Result<()> {
    let mut errors = Vec::new();
    for e in fs::read_dir(NETNS_RECORDS).into_iter().flatten().flatten() {
        let path = PathBuf::from(fs::read_to_string(e.path()).unwrap_or_default().trim());
        // Only what CNI made for our pods: the record holds a /var/run/netns/cni-* path.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with("cni-") || !path.starts_with("/var/run/netns") {
            continue;
        }
        if path.exists() {
            // A netns file is an nsfs bind mount: detach it, then unlink.
            unsafe { libc::umount2(cstr(&path).as_ptr(), libc::MNT_DETACH) };
            if let Err(e) = fs::remove_file(&path) {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        }
        let _ = fs::remove_file(e.path());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("; "))
    }
}

/// libcni caches each attachment's result as `<network>-<sandbox id>-<ifname>`; ours are
/// those of our network, and the loopback ones of our sandboxes.
fn cni_results(ids: &[String]) -> Vec<PathBuf> {
    let ours = |name: &str| {
        name.starts_with(&format!("{NETWORK}-"))
            || ids.iter().any(|id| name == format!("cni-loopback-{id}-lo"))
    };
    fs::read_dir(CNI_RESULTS)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| ours(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
}

fn remove_cni_results(ids: &[String]) -> Result<()> {
    for path in cni_results(ids) {
        fs::remove_file(&path).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// Mount points at or under `dir` (rootfs overlays, sandbox /dev/shm), deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

fn unmount_under(dir: &Path) -> Result<()> {
    for m in mounts_under(dir) {
        if unsafe { libc::umount2(cstr(&m).as_ptr(), libc::MNT_DETACH) } != 0 {
            bail!("umount {}: {}", m.display(), std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A shim listens on /run/containerd/s/<sha256 of "<containerd address>/<namespace>/<id>">
/// (containerd's shim.SocketAddress), whatever containerd's state directory; only those of
/// our sandboxes are removed, and the directories only if nothing else is left in them.
fn remove_shim_sockets(ids: &[String]) -> Result<()> {
    for id in ids {
        let hash = sha256(format!("{SOCKET}/k8s.io/{id}").as_bytes())?;
        let socket = Path::new(SHIM_SOCKETS).join(hash);
        if socket.exists() {
            fs::remove_file(&socket).with_context(|| socket.display().to_string())?;
        }
    }
    for dir in [SHIM_SOCKETS, "/run/containerd"] {
        let _ = fs::remove_dir(dir); // fails, as it should, when not empty
    }
    Ok(())
}

/// The pods' cgroup parent in every hierarchy, and whatever runc left in it.
fn cgroups() -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(CGROUP_PARENT.trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .collect()
}

/// Empty cgroups go with rmdir (their files are not files); children first.
fn remove_cgroups() -> Result<()> {
    for parent in cgroups() {
        for child in fs::read_dir(&parent)?.flatten().filter(|e| e.path().is_dir()) {
            fs::remove_dir(child.path()).with_context(|| child.path().display().to_string())?;
        }
        fs::remove_dir(&parent).with_context(|| parent.display().to_string())?;
    }
    Ok(())
}

fn delete_bridge() -> Result<()> {
    if !Path::new("/sys/class/net").join(BRIDGE).exists() {
        return Ok(());
    }
    run(Command::new("ip").args(["link", "del", BRIDGE]))
}

fn cstr(path: &Path) -> std::ffi::CString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in a path")
}
