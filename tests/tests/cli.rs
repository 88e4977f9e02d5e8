//! What users meet at the edges: errors that say what to do, and a clean detach.

mod common;

use std::{fs, path::Path, process::Command, time::Duration};

use anyhow::Context;

use common::require_root;
use netprobe_tests::{
    lab::{self, Lab},
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

/// netprobe as `nobody` with only these capabilities (ambient, so they survive the exec).
fn as_nobody(caps: &[&str], args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(setpriv_args(caps))
        .arg(netprobe::bin())
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}

fn setpriv_args(caps: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["--reuid=nobody", "--regid=nogroup", "--clear-groups"].map(String::from).to_vec();
    if caps.is_empty() {
        args.push("--inh-caps=-all".into());
    } else {
        let list: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
        args.push(format!("--inh-caps={}", list.join(",")));
        args.push(format!("--ambient-caps={}", list.join(",")));
    }
    args
}

/// The capabilities a refusal names: what follows `missing capabilities:` up to the full stop.
fn named_missing(err: &str) -> Vec<String> {
    let Some(rest) = err.split("missing capabilities: ").nth(1) else { return Vec::new() };
    rest.split('.').next().unwrap().split(", ").map(|c| c.trim().to_owned()).collect()
}

/// tracefs is root's only here (mode 0700), as on stock kernels: what the tests of the
/// classic tracepoints as `nobody` rest on.
fn assert_tracefs_is_roots_only() {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata("/sys/kernel/tracing").expect("tracefs mounted");
    assert_eq!((meta.uid(), meta.mode() & 0o077), (0, 0), "tracefs readable by others");
}

#[test]
fn unprivileged_runs_name_the_missing_capabilities() {
    require_root();
    assert_tracefs_is_roots_only();
    let classic =
        ["watch", "--duration", "1s", "--events", "ports,conntrack", "--tier", "tracepoint"];
    let default = ["watch", "--duration", "1s"];
    let classic_tier = ["watch", "--duration", "1s", "--tier", "tracepoint"];
    let every_tier_needs = ["CAP_BPF", "CAP_PERFMON"];
    // The default families run on tp_btf without tracefs; ports and conntrack at their
    // tracepoint tier (all they have here: no kprobes, no fentry) are classic tracepoints and
    // need to read it too.
    for (caps, args, missing) in [
        (&[][..], &default[..], &every_tier_needs[..]),
        (&["bpf"][..], &default[..], &["CAP_PERFMON"][..]),
        (&["perfmon"][..], &default[..], &["CAP_BPF"][..]),
        (&[][..], &classic[..], &["CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"][..]),
        (&["bpf"][..], &classic[..], &["CAP_PERFMON", "CAP_DAC_READ_SEARCH"][..]),
        (&["bpf", "perfmon"][..], &classic[..], &["CAP_DAC_READ_SEARCH"][..]),
        (&["bpf", "perfmon"][..], &classic_tier[..], &["CAP_DAC_READ_SEARCH"][..]),
    ] {
        let out = as_nobody(caps, args);
        let err = String::from_utf8_lossy(&out.stderr);
        println!("nobody with {caps:?}, {args:?}: {}", err.trim());
        assert_eq!(out.status.code(), Some(1), "{caps:?} {args:?}: {err}");
        assert_eq!(named_missing(&err), missing, "{caps:?} {args:?}: {err}");
    }
}

/// The non-root path: `nobody` with CAP_BPF and CAP_PERFMON counts drops exactly, every
/// family on its best tier. (The families on classic tracepoints, ports and conntrack, need
/// more: see the next test.)
#[test]
fn cap_bpf_and_cap_perfmon_are_enough_for_the_tp_btf_families() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let before = lab.snmp("pod-b", "Udp", "NoPorts")?;
    let mut args = setpriv_args(&["bpf", "perfmon"]);
    args.push(netprobe::bin().display().to_string());
    let np_args =
        ["report", "--duration", "10m", "--events", "drops,tcp,softnet", "--format", "json"];
    args.extend(np_args.map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let np = Running::start_bin(Path::new("setpriv"), &args)?;
    let b = lab.ip("pod-b").to_string();
    netprobe_tests::traffic::udp(&lab, "pod-a", &b, 8080, 25)?;
    common::settle();
    let report: serde_json::Value = serde_json::from_str(&np.stop()?)?;
    let kernel = lab.snmp("pod-b", "Udp", "NoPorts")? - before;
    common::assert_best_tiers(&report);
    let counted: u64 = report["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .filter(|d| d["reason"] == "NO_SOCKET" && d["pod"] == "pod-b")
        .map(|d| d["count"].as_u64().expect("count"))
        .sum();
    println!(
        "as nobody with CAP_BPF, CAP_PERFMON: pod-b NO_SOCKET {counted}, Udp NoPorts {kernel}"
    );
    assert_eq!(kernel, 25);
    assert_eq!(counted, kernel, "{report:#}");
    Ok(())
}

/// README: "netprobe needs root, or CAP_BPF plus CAP_PERFMON". With those two, `nobody`
/// runs every default family that has a tier without tracefs, on its best tier, and
/// leaves out ports and conntrack (classic tracepoints only), saying which capability
/// reading tracefs takes.
#[test]
fn cap_bpf_and_cap_perfmon_run_every_family_but_the_classic_tracepoint_ones() {
    require_root();
    assert_tracefs_is_roots_only();
    let _lab = Lab::up(&["pod-a"]).unwrap();
    let out = as_nobody(&["bpf", "perfmon"], &["report", "--duration", "1s", "--format", "json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    common::assert_best_tiers(&report);
    let ran: Vec<&str> = report["families"]
        .as_array()
        .expect("families")
        .iter()
        .map(|f| f["family"].as_str().expect("family"))
        .collect();
    assert_eq!(ran, ["drops", "tcp", "softnet"], "{report:#}");
    let left_out = report["unavailable"].as_array().expect("unavailable");
    let names: Vec<&str> = left_out.iter().map(|u| u["family"].as_str().unwrap()).collect();
    assert_eq!(names, ["ports", "conntrack"], "{report:#}");
    for u in left_out {
        let why = u["why"].as_str().unwrap();
        println!("{}: {why}", u["family"]);
        assert!(why.contains("/sys/kernel/tracing") && why.contains("CAP_DAC_READ_SEARCH"), "{u}");
        assert!(!why.contains("not mounted"), "tracefs is mounted: {u}");
    }
    assert!(
        err.contains("ports does not run here") && err.contains("CAP_DAC_READ_SEARCH"),
        "{err}"
    );
}

#[test]
fn the_classic_tracepoint_families_run_with_cap_dac_read_search_too() {
    require_root();
    let _lab = Lab::up(&["pod-a"]).unwrap();
    let args = ["watch", "--duration", "1s", "--events", "ports,conntrack"];
    let out = as_nobody(&["bpf", "perfmon", "dac_read_search"], &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ports via tracepoint, conntrack via tracepoint"), "{err}");
}

#[test]
fn doctor_marks_one_tier_in_use_per_family_the_one_report_uses() -> anyhow::Result<()> {
    require_root();
    let _lab = Lab::up(&["pod-a"])?;
    let out = netprobe::run(&["doctor"])?;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // The families' section: a family per line at two spaces, its tiers at four.
    let section = text.split("Hook families").nth(1).unwrap_or_else(|| panic!("{text}"));
    let mut in_use: Vec<(String, Vec<String>)> = Vec::new();
    for line in section.lines().skip(1) {
        if line.starts_with("  ") && !line.starts_with("   ") {
            in_use.push((line.split_whitespace().next().unwrap().to_owned(), Vec::new()));
        } else if line.contains("<- in use") {
            let tier = line.split_whitespace().next().unwrap().to_owned();
            in_use.last_mut().unwrap_or_else(|| panic!("{text}")).1.push(tier);
        }
    }
    let all = "drops,tcp,ports,conntrack,softnet,bursts,linklocal";
    let out = netprobe::run(&["report", "--duration", "1s", "--events", all, "--format", "json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    common::assert_best_tiers(&report);
    let used: Vec<(String, Vec<String>)> = report["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["family"].as_str().unwrap().into(), vec![f["tier"].as_str().unwrap().into()]))
        .collect();
    println!("doctor: {in_use:?}");
    assert_eq!(in_use, used, "doctor's `<- in use`, one per family, vs report's tiers: {text}");
    Ok(())
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

/// The frames of a recording (docs/recording.md), read here independently of netprobe: the
/// magic, version 3, then length-prefixed JSON payloads after their CRC.
fn frames(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let bytes = fs::read(path)?;
    anyhow::ensure!(bytes.starts_with(b"netprobe-record\n"), "no magic");
    anyhow::ensure!(bytes[16..20] == 3u32.to_le_bytes(), "version {:?}", &bytes[16..20]);
    let (mut at, mut out) = (20, Vec::new());
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        let payload = bytes.get(at + 8..at + 8 + len).context("a truncated frame")?;
        out.push(serde_json::from_slice(payload)?);
        at += 8 + len;
    }
    Ok(out)
}

/// A `report --record` stopped by `signal`: it prints its report, the recording ends with a
/// complete end frame and replays to the same report, and every program and link is gone.
fn report_stopped_by(signal: i32) -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let file = common::Scratch::new(&format!("signal-{signal}.np"));
    let args = ["report", "--duration", "10m", "--events", "drops", "--format", "json"];
    let np = Running::start(&[&args[..], &["--record", file.str()]].concat())?;
    let (progs, links) = (bpf_ids(np.pid(), "prog_id:"), bpf_ids(np.pid(), "link_id:"));
    assert!(!progs.is_empty() && !links.is_empty(), "attached: progs {progs:?} links {links:?}");
    assert!(progs.iter().all(|&id| exists("prog", id)));
    netprobe_tests::traffic::udp(&lab, "pod-a", &lab.ip("pod-b").to_string(), 8080, 10)?;
    common::settle();
    let (status, out) = np.stop_with(signal)?;
    assert!(status.success(), "{status}");
    let live: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("no report printed: {out}"))?;
    assert_eq!(live["complete"], true, "{live:#}");
    let frames = frames(file.path())?;
    let end = &frames.last().context("no frames")?["end"];
    println!("signal {signal}: {} frames, end {end}", frames.len());
    assert_eq!(end["complete"], true, "{end}");
    assert!(frames[0].get("header").is_some(), "{}", frames[0]);
    let replay = netprobe::run(&["report", "--from", file.str(), "--format", "json"])?;
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&replay.stdout)?, live);
    // Freeing is deferred past the fd close; give the kernel a moment.
    let gone = || {
        progs.iter().all(|&id| !exists("prog", id)) && links.iter().all(|&id| !exists("link", id))
    };
    lab::wait_for(Duration::from_secs(5), "programs and links freed", || Ok(gone()))?;
    let pinned = Path::new("/sys/fs/bpf");
    let leftovers: Vec<_> =
        fs::read_dir(pinned).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
    assert!(leftovers.iter().all(|n| !n.to_string_lossy().contains("netprobe")), "{leftovers:?}");
    Ok(())
}

#[test]
fn sigterm_ends_a_recording_report_cleanly() -> anyhow::Result<()> {
    report_stopped_by(libc::SIGTERM)
}

#[test]
fn sigint_ends_a_recording_report_cleanly() -> anyhow::Result<()> {
    report_stopped_by(libc::SIGINT)
}

/// `netprobe bursts` until SIGTERM, with 20 datagrams from pod-a to pod-b `wait` before the
/// signal: the summary it prints, and pod-b's host-side veth's tx packets over the run.
fn bursts_until_sigterm(wait: Duration) -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let veth = lab::host_veth("pod-b");
    let np = Running::start(&["bursts", "--duration", "10m", "--format", "json"])?;
    // Interfaces share 128 slots by ifindex: on a node with many interfaces, a lab interface
    // may find its slot taken, and netprobe says so rather than bin it.
    let skipped: Vec<&String> =
        np.stderr_seen.iter().filter(|l| l.contains("not binning np-")).collect();
    assert!(skipped.is_empty(), "lab interfaces not binned: {skipped:?}");
    let sent = || -> anyhow::Result<u64> {
        let path = format!("/sys/class/net/{veth}/statistics/tx_packets");
        Ok(fs::read_to_string(path)?.trim().parse()?)
    };
    let before = sent()?;
    netprobe_tests::traffic::udp(&lab, "pod-a", &lab.ip("pod-b").to_string(), 8080, 20)?;
    let grown = sent()? - before;
    std::thread::sleep(wait);
    let (status, out) = np.stop_with(libc::SIGTERM)?;
    assert!(status.success(), "{status}");
    let summary: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("no summary printed: {out}"))?;
    let duration = summary["duration_s"].as_f64().expect("duration_s");
    assert!(duration < 60.0, "stopped by the signal, not --duration: {duration}");
    let row = summary["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .find(|i| i["name"] == veth.as_str() && i["direction"] == "tx")
        .cloned()
        .unwrap_or_else(|| panic!("no {veth} tx: {summary:#}"));
    println!(
        "SIGTERM bursts: {veth} tx {} packets binned, tx_packets grew {grown}",
        row["packets"]
    );
    assert_eq!(row["packets"], grown, "{row}");
    Ok(())
}

#[test]
fn sigterm_ends_bursts_with_its_summary() -> anyhow::Result<()> {
    bursts_until_sigterm(Duration::from_millis(1500))
}

/// The signal right after the traffic: its bins are still the current ones, which the
/// reads on the timer leave to late CPUs; the last read waits them out and takes them too.
#[test]
fn sigterm_right_after_traffic_keeps_every_packet() -> anyhow::Result<()> {
    bursts_until_sigterm(Duration::ZERO)
}

/// A mount namespace of its own with tracefs unmounted, as on a minimal node image; a
/// `sleep` holds it, killed when dropped. Nothing outside it sees the change.
struct WithoutTracefs(std::process::Child);

impl WithoutTracefs {
    fn new() -> anyhow::Result<Self> {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("umount /sys/kernel/tracing && exec sleep 600")
            .spawn()
            .context("unshare (util-linux)")?;
        let ns = Self(holder);
        let comm = format!("/proc/{}/comm", ns.0.id());
        lab::wait_for(Duration::from_secs(5), "tracefs unmounted in the namespace", || {
            Ok(fs::read_to_string(&comm)?.trim() == "sleep")
        })?;
        Ok(ns)
    }

    /// `nsenter` into the namespace, then `args`.
    fn enter(&self, args: &[&str]) -> Vec<String> {
        let ns = format!("--mount=/proc/{}/ns/mnt", self.0.id());
        [ns.as_str()].iter().chain(args).map(|a| a.to_string()).collect()
    }

    /// Its tracefs mount points, from its mount table.
    fn tracefs(&self) -> Vec<String> {
        let table = fs::read_to_string(format!("/proc/{}/mountinfo", self.0.id())).unwrap();
        let tracefs =
            table.lines().filter(|l| l.split(" - ").nth(1).unwrap().starts_with("tracefs "));
        tracefs.map(|l| l.split(' ').nth(4).unwrap().to_owned()).collect()
    }
}

impl Drop for WithoutTracefs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// netprobe mounts tracefs for the classic tracepoints when nothing has, and unmounts it
/// when it exits; a tracefs someone else mounted stays.
#[test]
fn tracefs_netprobe_mounted_is_unmounted_at_exit_and_no_other() -> anyhow::Result<()> {
    require_root();
    let ns = WithoutTracefs::new()?;
    let before = ns.tracefs();
    let np_bin = netprobe::bin().display().to_string();
    let report = ["report", "--duration", "10m", "--events", "ports", "--format", "json"];
    let args = ns.enter(&[&[np_bin.as_str()][..], &report[..]].concat());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let np = Running::start_bin(Path::new("nsenter"), &args)?;
    let during = ns.tracefs();
    let out: serde_json::Value = serde_json::from_str(&np.stop()?)?;
    let after = ns.tracefs();
    println!("tracefs mounts: before {before:?}, while netprobe ran {during:?}, after {after:?}");
    assert_eq!(before, Vec::<String>::new());
    assert_eq!(during, ["/sys/kernel/tracing"]);
    assert_eq!(out["families"][0]["tier"], "tracepoint", "{out:#}");
    assert_eq!(after, Vec::<String>::new(), "netprobe left its tracefs mounted");
    // Mounted by another: still there after netprobe.
    let mount = ns.enter(&["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"]);
    assert!(Command::new("nsenter").args(&mount).status()?.success());
    let watch = ns.enter(&[&np_bin, "watch", "--duration", "1s", "--events", "ports"]);
    let out = Command::new("nsenter").args(&watch).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ns.tracefs(), ["/sys/kernel/tracing"], "netprobe unmounted a tracefs not its own");
    Ok(())
}

#[test]
fn a_kernel_without_btf_is_refused_naming_the_file() -> anyhow::Result<()> {
    // In a private mount namespace, an empty file over /sys/kernel/btf/vmlinux: to netprobe
    // this kernel has no usable BTF. Nothing outside that namespace sees the change.
    require_root();
    let empty = common::Scratch::new("empty-btf");
    fs::write(empty.path(), b"")?;
    let script = format!(
        "mount --bind {} /sys/kernel/btf/vmlinux && exec {} watch --duration 1s",
        empty.str(),
        netprobe::bin().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .context("unshare (util-linux)")?;
    let err = String::from_utf8_lossy(&out.stderr);
    println!("no BTF: {}", err.trim());
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("BTF") && err.contains("/sys/kernel/btf/vmlinux"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    Ok(())
}
