//! The capabilities netprobe needs, read from /proc/self/status.

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
    /// CAP_SYS_ADMIN implies both on kernels that predate them.
    pub fn require(&self) -> Result<(), Error> {
        if self.has(CAP_SYS_ADMIN) {
            return Ok(());
        }
        let missing: Vec<_> = [("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON)]
            .into_iter()
            .filter(|(_, c)| !self.has(*c))
            .map(|(n, _)| n)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Capabilities(missing))
        }
    }
}
