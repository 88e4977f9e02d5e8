//! Network namespaces ("pods") on a bridge, with veth pairs. Everything a lab creates is
//! recorded under /run/netprobe-lab, removed when the `Lab` is dropped (panics included), and
//! removed by the next `Lab::up` if a process was killed before it could clean up. Global
//! sysctls changed through the lab are restored the same way.

use std::{
    fs::{self, File},
    net::Ipv4Addr,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

const STATE_DIR: &str = "/run/netprobe-lab";
const LOCK: &str = "/run/netprobe-lab.lock";
pub const BRIDGE: &str = "np-br0";
const SUBNET: [u8; 3] = [10, 99, 0];

pub struct Lab {
    pods: Vec<String>,
    /// For pods that are CRI sandboxes: each one's netns name (under /run/netns) and address.
    cri: Vec<(String, Ipv4Addr)>,
    /// Held for the lab's lifetime: labs (and tests using global kernel state) never overlap.
    /// None on CRI pods, whose harness holds the lock.
    _lock: Option<File>,
}

impl Lab {
    /// Creates the named pods. Waits for any other lab on this machine to be torn down first.
    pub fn up(pods: &[&str]) -> Result<Self> {
        let lock = lock()?;
        cleanup_leftovers()?;
        fs::create_dir_all(STATE_DIR)?;
        let lab = Self {
            pods: pods.iter().map(|p| p.to_string()).collect(),
            cri: Vec::new(),
            _lock: Some(lock),
        };
        for pod in pods {
            if Path::new("/run/netns").join(pod).exists() {
                bail!("netns {pod} exists and is not the lab's; remove it or pick other names");
            }
        }
        if Path::new("/sys/class/net").join(BRIDGE).exists() {
            bail!("interface {BRIDGE} exists and is not the lab's");
        }
        // From here on Drop undoes whatever part of the setup happened.
        record("bridge", BRIDGE)?;
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        quiet(BRIDGE)?;
        ip(&["link", "set", BRIDGE, "up"])?;
        for (i, pod) in pods.iter().enumerate() {
            lab.add_pod(pod, i)?;
        }
        Ok(lab)
    }

    /// The lab on pods made through CRI (`crate::cri`), each known by an alias (`pod-a`) so the
    /// incidents run on them unchanged: (alias, netns path, address). The harness holds the lab
    /// lock; sysctls set through this lab are restored when it is dropped, as always.
    pub fn on_cri(pods: &[(&str, &Path, Ipv4Addr)]) -> Result<Self> {
        fs::create_dir_all(STATE_DIR)?;
        let mut cri = Vec::new();
        for (_, netns, ip) in pods {
            let name = netns.file_name().and_then(|n| n.to_str()).context("a netns name")?;
            cri.push((name.to_owned(), *ip));
        }
        Ok(Self { pods: pods.iter().map(|p| p.0.to_owned()).collect(), cri, _lock: None })
    }

    /// The netns (under /run/netns) a pod runs in.
    fn netns_name<'a>(&'a self, pod: &'a str) -> &'a str {
        match self.pods.iter().position(|p| p == pod) {
            Some(i) if !self.cri.is_empty() => &self.cri[i].0,
            _ => pod,
        }
    }

    /// Adds a pod to the running lab, as a pod scheduled while netprobe runs would appear.
    pub fn add(&mut self, pod: &str) -> Result<()> {
        let index = self.pods.len();
        self.pods.push(pod.to_owned());
        self.add_pod(pod, index)
    }

    fn add_pod(&self, pod: &str, index: usize) -> Result<()> {
        let host_if = host_veth(pod);
        record("netns", pod)?;
        ip(&["netns", "add", pod])?;

        record("link", &host_if)?;
        ip(&["link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", pod])?;
        ip(&["link", "set", &host_if, "master", BRIDGE])?;
        quiet(&host_if)?;
        ip(&["link", "set", &host_if, "up"])?;
        let addr = format!("{}/24", self.ip_at(index));
        let addr6 = format!("fd99::{}/64", index + 10);
        // No link-local address and no router solicitations: less background IPv6 multicast
        // (and drops of it) around what the lab provokes. Must precede link up.
        self.sh_ok(
            pod,
            "sysctl -qw net.ipv6.conf.eth0.addr_gen_mode=1 net.ipv6.conf.eth0.router_solicitations=0",
        )?;
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["addr", "add", &addr, "dev", "eth0"],
            vec!["addr", "add", &addr6, "dev", "eth0", "nodad"],
            vec!["link", "set", "eth0", "up"],
        ] {
            let mut full = vec!["netns", "exec", pod, "ip"];
            full.extend(args);
            ip(&full)?;
        }
        Ok(())
    }

    fn ip_at(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 10 + index as u8)
    }

    pub fn ip(&self, pod: &str) -> Ipv4Addr {
        let i = self.pods.iter().position(|p| p == pod).expect("pod is in the lab");
        self.cri.get(i).map_or_else(|| self.ip_at(i), |(_, ip)| *ip)
    }

    pub fn pods(&self) -> &[String] {
        &self.pods
    }

    /// Runs `bash -c script` inside a pod.
    pub fn sh(&self, pod: &str, script: &str) -> Result<Output> {
        let out = Command::new("ip")
            .args(["netns", "exec", self.netns_name(pod), "bash", "-c", script])
            .output()
            .with_context(|| format!("running in {pod}: {script}"))?;
        Ok(out)
    }

    /// Like [`Lab::sh`], failing unless the script succeeds.
    pub fn sh_ok(&self, pod: &str, script: &str) -> Result<String> {
        let out = self.sh(pod, script)?;
        if !out.status.success() {
            bail!("in {pod}: `{script}` failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sets a global sysctl for the lab's lifetime; the old value is recorded first.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = sysctl_path(key);
        let old = fs::read_to_string(&path).with_context(|| format!("reading {key}"))?;
        // Only the first change records the value to restore.
        let file = Path::new(STATE_DIR).join(format!("sysctl.{key}"));
        if !file.exists() {
            fs::write(&file, old.trim())?;
        }
        fs::write(&path, value).with_context(|| format!("setting {key}={value}"))
    }

    /// A per-namespace IPv6 counter from /proc/net/snmp6 inside a pod, e.g. "Udp6NoPorts".
    pub fn snmp6(&self, pod: &str, key: &str) -> Result<u64> {
        let text = self.sh_ok(pod, "cat /proc/net/snmp6")?;
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .with_context(|| format!("{key} in {pod}"))
    }

    /// Waits until something in `pod` listens on TCP (or, with `udp`, is bound to UDP) `port`,
    /// as `ss` shows it; fails after 10 s.
    pub fn wait_listening(&self, pod: &str, port: u16, udp: bool) -> Result<()> {
        let flags = if udp { "-uln" } else { "-tln" };
        let script = format!("ss -H {flags} 'sport = :{port}'");
        wait_for(Duration::from_secs(10), &format!("{pod} listening on {port}"), || {
            Ok(!self.sh_ok(pod, &script)?.trim().is_empty())
        })
    }

    /// The netns inode of a pod.
    pub fn netns(&self, pod: &str) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(fs::metadata(Path::new("/run/netns").join(self.netns_name(pod)))?.ino())
    }

    /// A per-namespace counter from /proc/net/snmp or /proc/net/netstat inside a pod, e.g.
    /// ("Udp", "NoPorts") or ("TcpExt", "ListenOverflows").
    pub fn snmp(&self, pod: &str, group: &str, field: &str) -> Result<u64> {
        let text = self.sh_ok(pod, "cat /proc/net/snmp /proc/net/netstat")?;
        snmp_value(&text, group, field).with_context(|| format!("{group}:{field} in {pod}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = cleanup_leftovers() {
            eprintln!("lab: cleanup failed: {e:#}");
        }
    }
}

/// No IPv6 link-local address and no router solicitations on a host-side interface: the lab
/// carries only the traffic a test makes. Per-device sysctls go with the device.
fn quiet(dev: &str) -> Result<()> {
    for (key, value) in [("addr_gen_mode", "1"), ("router_solicitations", "0")] {
        fs::write(sysctl_path(&format!("net.ipv6.conf.{dev}.{key}")), value)
            .with_context(|| format!("quieting {dev}"))?;
    }
    Ok(())
}

/// The host-side veth of a pod (interface names are limited to 15 bytes).
pub fn host_veth(pod: &str) -> String {
    let mut name = format!("np-{pod}");
    name.truncate(15);
    name
}

/// Removes everything recorded under the state directory and restores recorded sysctls.
/// Safe to call at any time; `cargo xtask lab down` is this.
pub fn cleanup_leftovers() -> Result<()> {
    let Ok(entries) = fs::read_dir(STATE_DIR) else { return Ok(()) };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    // Namespaces first (their veths go with them), then links, bridges, sysctls.
    let rank = |p: &PathBuf| {
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        ["netns.", "link.", "bridge.", "sysctl."].iter().position(|k| n.starts_with(k)).unwrap_or(9)
    };
    entries.sort_by_key(rank);
    let mut errors = Vec::new();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        let result = match name.split_once('.') {
            Some(("netns", ns)) => quiet_ip(&["netns", "del", ns]),
            Some(("link" | "bridge", link)) => quiet_ip(&["link", "del", link]),
            Some(("sysctl", key)) => fs::read_to_string(&path)
                .and_then(|old| fs::write(sysctl_path(key), old))
                .map_err(Into::into),
            _ => Ok(()),
        };
        // Never abort the loop: whatever fails, every later entry is still undone.
        let result = result.and_then(|()| fs::remove_file(&path).map_err(Into::into));
        if let Err(e) = result {
            errors.push(format!("{name}: {e:#}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("could not remove: {}", errors.join("; "))
    }
}

/// Polls `done` every 20 ms until it says true; fails after `timeout`, naming `what`.
pub fn wait_for(
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if done()? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn lock() -> Result<File> {
    let f = File::options().create(true).truncate(false).write(true).open(LOCK)?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(f);
    }
    // Held by a test, a lab, or a containerd left running by `cargo xtask lab pod add`.
    eprintln!(
        "waiting for {LOCK} (held by another lab or test; `cargo xtask lab down` ends a kept one)"
    );
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        bail!("locking {LOCK}: {}", std::io::Error::last_os_error());
    }
    Ok(f)
}

fn record(kind: &str, name: &str) -> Result<()> {
    fs::write(Path::new(STATE_DIR).join(format!("{kind}.{name}")), "")?;
    Ok(())
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Deletion that tolerates "already gone".
fn quiet_ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("No such") || err.contains("Cannot find") {
        Ok(())
    } else {
        bail!("ip {}: {}", args.join(" "), err.trim())
    }
}

/// Reads `field` of `group` from the header/value line pairs of /proc/net/snmp or netstat.
pub fn snmp_value(text: &str, group: &str, field: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let i = names.split_whitespace().position(|n| n == field);
        if let Some(i) = i {
            return values.split_whitespace().nth(i)?.parse().ok();
        }
    }
    None
}

/// A process running inside a pod, killed when dropped.
pub struct Background(std::process::Child);

impl Lab {
    /// Starts `program args…` inside a pod, in the background.
    pub fn spawn(&self, pod: &str, program: &str, args: &[&str]) -> Result<Background> {
        let child = Command::new("ip")
            .args(["netns", "exec", self.netns_name(pod), program])
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program} in {pod}"))?;
        Ok(Background(child))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_pairs() {
        let text = "Udp: InDatagrams NoPorts InErrors\nUdp: 5 42 0\nUdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";
        assert_eq!(snmp_value(text, "Udp", "NoPorts"), Some(42));
        assert_eq!(snmp_value(text, "UdpLite", "NoPorts"), Some(0));
        assert_eq!(snmp_value(text, "Udp", "Nope"), None);
    }

    #[test]
    fn veth_names_fit() {
        assert_eq!(host_veth("pod-a"), "np-pod-a");
        assert!(host_veth("a-very-long-pod-name").len() <= 15);
    }
}
