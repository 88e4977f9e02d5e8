//! The root of the cgroup v2 hierarchy, which every pod's processes are below: cgroup_skb
//! programs attached there see the packets of every socket on the node.

use std::path::PathBuf;

use crate::error::Error;

/// Where netprobe mounts cgroup2 itself when nothing has (cgroup v1-only hosts).
const OWN_MOUNT: &str = "/run/netprobe/cgroup2";

/// The root cgroup v2 directory. The host's mounts are read through kthreadd (PID 2), whose
/// root and mount namespace are the host's even when netprobe runs in a container with the
/// host's PIDs (its own cgroup namespace would otherwise make its own cgroup the root); then
/// netprobe's own mounts; else cgroup2 is mounted at /run/netprobe/cgroup2.
pub fn root() -> Result<PathBuf, Error> {
    for (mountinfo, prefix) in [("/proc/2/mountinfo", "/proc/2/root"), ("/proc/self/mountinfo", "")]
    {
        let Ok(text) = std::fs::read_to_string(mountinfo) else { continue };
        if let Some(at) = cgroup2_mount(&text) {
            let path = PathBuf::from(format!("{prefix}{at}"));
            if path.join("cgroup.procs").exists() {
                return real_root(path);
            }
        }
    }
    std::fs::create_dir_all(OWN_MOUNT)?;
    let target = std::ffi::CString::new(OWN_MOUNT).expect("no NUL");
    let fstype = std::ffi::CString::new("cgroup2").expect("no NUL");
    let rc = unsafe {
        libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null())
    };
    if rc != 0 {
        return Err(Error::Tier(format!(
            "no cgroup2 mounted, and mounting it at {OWN_MOUNT} failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    real_root(PathBuf::from(OWN_MOUNT))
}

/// `path` if it is the hierarchy's root. A cgroup namespace's root (netprobe in a container
/// of its own) is an ordinary cgroup, which has a `cgroup.type`: programs there would see
/// only the container's own sockets, so that is refused rather than counted short.
fn real_root(path: PathBuf) -> Result<PathBuf, Error> {
    if path.join("cgroup.type").exists() {
        return Err(Error::Tier(format!(
            "{} is a cgroup namespace's root, not the node's: run netprobe with the host's PID \
             namespace and CAP_SYS_PTRACE (it reads the node's mounts through /proc/2), or in \
             the host's cgroup namespace",
            path.display()
        )));
    }
    Ok(path)
}

/// The mount point of the hierarchy's root in a mountinfo, if cgroup2 is mounted.
fn cgroup2_mount(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER_OPTS"
        let (fields, rest) = line.split_once(" - ")?;
        let fields: Vec<&str> = fields.split(' ').collect();
        let fstype = rest.split(' ').next()?;
        (fstype == "cgroup2" && fields.get(3) == Some(&"/"))
            .then(|| fields.get(4).map(|m| m.to_string()))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_root_of_cgroup2_in_mountinfo() {
        let hybrid = "35 24 0:30 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(hybrid).as_deref(), Some("/sys/fs/cgroup/unified"));
        let v1 = "36 35 0:31 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_mount(v1), None);
        // A container's view of its own cgroup is not the hierarchy's root.
        let nested = "50 40 0:38 /kubepods/pod1 /sys/fs/cgroup rw shared:5 - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(nested), None);
    }

    #[test]
    fn a_cgroup_namespaces_root_is_refused() {
        let dir = std::env::temp_dir().join(format!("netprobe-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(real_root(dir.clone()).unwrap(), dir);
        // An ordinary cgroup, as a container's own namespace shows it.
        std::fs::write(dir.join("cgroup.type"), "domain\n").unwrap();
        let e = real_root(dir.clone()).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.contains("cgroup namespace's root"), "{e}");
    }
}
