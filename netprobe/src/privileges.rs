//! The capabilities netprobe needs, read from /proc/self/status, and the memlock limit that
//! kernels before 5.11 charge BPF maps to.

use std::fs;

use crate::error::Error;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

pub struct Privileges {
    pub euid: u32,
    effective: u64,
}

impl Privileges {
    pub fn current() -> Self {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        Self { euid: unsafe { libc::geteuid() }, effective }
    }

    pub fn has(&self, cap: u32) -> bool {
        self.effective & (1 << cap) != 0
    }

    /// (capability, held) for what doctor shows.
    pub fn table(&self) -> Vec<(&'static str, bool)> {
        [
            ("CAP_BPF", CAP_BPF),
            ("CAP_PERFMON", CAP_PERFMON),
            ("CAP_SYS_ADMIN", CAP_SYS_ADMIN),
            ("CAP_NET_ADMIN", CAP_NET_ADMIN),
        ]
        .into_iter()
        .map(|(n, c)| (n, self.has(c)))
        .collect()
    }

    /// CAP_BPF loads programs, CAP_PERFMON lets tracing programs read kernel memory;
    /// CAP_SYS_ADMIN implies both on kernels that predate them. `also`: a capability the
    /// tier this run must use needs as well (tracefs's, for the classic tracepoints).
    pub fn require(&self, also: Option<&'static str>) -> Result<(), Error> {
        let base = [("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON)];
        let mut missing: Vec<_> = base
            .into_iter()
            .filter(|(_, c)| !self.has(*c) && !self.has(CAP_SYS_ADMIN))
            .map(|(n, _)| n)
            .collect();
        missing.extend(also);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Capabilities(missing))
        }
    }
}

/// Raises RLIMIT_MEMLOCK to infinity. Before 5.11 every BPF map is charged to it, and the
/// usual 64 KiB default makes map creation fail with EPERM; later kernels charge maps to the
/// memory cgroup instead. Err says why it could not be raised, on a kernel where that matters.
pub fn raise_memlock() -> Result<(), String> {
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } == 0 || !maps_use_memlock() {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut now) };
    Err(format!(
        "cannot raise RLIMIT_MEMLOCK from {} KiB ({error}): this kernel (before 5.11) charges BPF \
         maps to it, so creating them may fail with EPERM; run with `ulimit -l unlimited` or \
         CAP_SYS_RESOURCE",
        now.rlim_cur / 1024
    ))
}

/// The memlock row of doctor.
pub fn memlock_status() -> String {
    let mut now = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut now) };
    let limit = match now.rlim_cur {
        libc::RLIM_INFINITY => "unlimited".to_string(),
        n => format!("{} KiB", n / 1024),
    };
    if maps_use_memlock() {
        format!("{limit}; this kernel charges BPF maps to RLIMIT_MEMLOCK (before 5.11)")
    } else {
        format!("{limit}; not used for BPF maps on this kernel (5.11+ charges the memory cgroup)")
    }
}

/// Whether the running kernel predates 5.11, from /proc/sys/kernel/osrelease.
fn maps_use_memlock() -> bool {
    predates_5_11(&fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default())
}

fn predates_5_11(release: &str) -> bool {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    (next(), next()) < (5, 11)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_before_5_11_charge_maps_to_memlock() {
        assert!(super::predates_5_11("5.10.0-46-cloud-amd64\n"));
        assert!(super::predates_5_11("4.19.0"));
        assert!(!super::predates_5_11("5.11.0"));
        assert!(!super::predates_5_11("6.1.0-50-cloud-amd64"));
        assert!(!super::predates_5_11("6.12.95+deb12-cloud-amd64"));
    }
}
