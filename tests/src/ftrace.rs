//! A non-BPF witness: a tracefs instance of its own on one event, for what the kernel does
//! where BPF programs do not run (this sandbox's PID 1, docs/findings.md).

use std::{collections::BTreeMap, fs, path::PathBuf};

use anyhow::{Context, Result};

/// Records `event` (`category/name`) where `filter` holds, until dropped.
pub struct Ftrace {
    dir: PathBuf,
    event: String,
}

impl Ftrace {
    pub fn start(event: &str, filter: &str) -> Result<Self> {
        let dir = PathBuf::from(format!(
            "/sys/kernel/tracing/instances/netprobe-{}-{}",
            std::process::id(),
            event.replace('/', "-")
        ));
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let t = Self { dir, event: event.to_owned() };
        fs::write(t.dir.join("events").join(event).join("filter"), filter)?;
        fs::write(t.dir.join("events").join(event).join("enable"), "1")?;
        Ok(t)
    }

    /// Records `event` (where `filter` holds, if any) when the current task is one of PID 1's
    /// threads, the context no BPF program sees here.
    pub fn in_init(event: &str, filter: Option<&str>) -> Result<Self> {
        let init: Vec<String> = fs::read_dir("/proc/1/task")?
            .filter_map(|t| Some(format!("common_pid == {}", t.ok()?.file_name().to_str()?)))
            .collect();
        let init = init.join(" || ");
        Self::start(event, &filter.map_or(init.clone(), |f| format!("({f}) && ({init})")))
    }

    /// Events recorded so far.
    pub fn total(&self) -> Result<u64> {
        Ok(self.per_cpu()?.values().sum())
    }

    /// Events recorded so far, per CPU.
    pub fn per_cpu(&self) -> Result<BTreeMap<u32, u64>> {
        let mut out = BTreeMap::new();
        for line in fs::read_to_string(self.dir.join("trace"))?.lines() {
            // "  <comm>-<pid>  [001] ..s1.  123.456: softirq_entry: vec=3 [action=NET_RX]"
            let Some(cpu) = line.split_once('[').and_then(|(_, r)| r.split_once(']')) else {
                continue;
            };
            if line.starts_with('#') {
                continue;
            }
            if let Ok(cpu) = cpu.0.trim().parse() {
                *out.entry(cpu).or_default() += 1;
            }
        }
        Ok(out)
    }
}

/// netprobe's count of what the kernel counted: never more, and short by no more than the
/// events that ran where BPF does not.
pub fn assert_seen(what: &str, netprobe: u64, kernel: u64, unseen: u64) {
    assert!(netprobe <= kernel, "{what}: netprobe {netprobe} over the kernel's {kernel}");
    assert!(
        kernel - netprobe <= unseen,
        "{what}: netprobe {netprobe} of the kernel's {kernel}, and only {unseen} where BPF does \
         not run"
    );
}

impl Drop for Ftrace {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.join("events").join(&self.event).join("enable"), "0");
        let _ = fs::remove_dir(&self.dir);
    }
}
