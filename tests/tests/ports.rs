//! Ephemeral-port exhaustion and bind conflicts (incidents 03 and 04): netprobe's counts
//! against the errors the client itself saw.

mod common;

use common::{incident, settle};
use netprobe_tests::{
    incidents::labtool,
    netprobe::{self, Running},
};
use serde_json::Value;

fn count(report: &Value, pod: &str, op: &str, errno: &str) -> u64 {
    report["ports"]
        .as_array()
        .expect("ports counts")
        .iter()
        .filter(|p| p["pod"] == pod && p["op"] == op && p["errno"] == errno)
        .map(|p| p["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn narrow_port_range_and_time_wait_give_eaddrnotavail() -> anyhow::Result<()> {
    // The incident's own provoke prints; this test needs the client's tally, so it runs the
    // same loop itself.
    let (lab, _server, incident) = incident("port-exhaustion")?;
    let np = Running::report("ports")?;
    let b = lab.ip("pod-b").to_string();
    let seen: Value = serde_json::from_str(
        &lab.sh_ok("pod-a", &format!("{} connect-loop {b} 5003 40", labtool()))?,
    )?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);

    let client_saw = seen["eaddrnotavail"].as_u64().unwrap();
    println!(
        "pod-a EADDRNOTAVAIL: netprobe {}, the client {client_saw}",
        count(&report, "pod-a", "connect", "EADDRNOTAVAIL")
    );
    // Ten ports; now and then the server's close wins the race, the server keeps the
    // TIME_WAIT, and the client's port is free again at once.
    let ok = seen["ok"].as_u64().unwrap();
    assert!((10..=13).contains(&ok), "{seen}");
    assert_eq!(client_saw, 40 - ok, "{seen}");
    assert_eq!(count(&report, "pod-a", "connect", "EADDRNOTAVAIL"), client_saw, "{report:#}");
    assert_eq!(count(&report, "pod-b", "connect", "EADDRNOTAVAIL"), 0);
    let sites = report["port_errors"].as_array().expect("port_errors");
    let site = sites
        .iter()
        .find(|p| p["pod"] == "pod-a" && p["op"] == "connect" && p["addr"] == b.as_str())
        .unwrap_or_else(|| panic!("no pod-a connect errors to {b}: {sites:?}"));
    assert_eq!(sites.len(), 1, "one destination, one site: {sites:?}");
    assert_eq!(site["comm"], "labtool");
    assert_eq!(
        (site["errno"].as_str(), site["port"].as_u64()),
        (Some("EADDRNOTAVAIL"), Some(5003))
    );
    assert_eq!(site["count"], client_saw, "{site}");
    assert_eq!(site["ip_local_port_range"], "40000-40009");
    // Read at the first error: all ten ports are taken then, but the last connection may still
    // be in FIN_WAIT2, waiting for the server's FIN, rather than TIME_WAIT.
    let tw = site["time_wait_to_destination"].as_u64().unwrap();
    assert!((9..=10).contains(&tw), "{site}");
    Ok(())
}

#[test]
fn reused_source_address_collides_with_a_live_connection() -> anyhow::Result<()> {
    let (lab, _server, incident) = incident("bind-collision")?;
    let np = Running::report("ports")?;
    let (a, b) = (lab.ip("pod-a").to_string(), lab.ip("pod-b").to_string());
    let errno = lab.sh_ok("pod-a", &format!("{} collide {a} 45000 {b} 5004", labtool()))?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_finding(&report, incident);

    // Envoy's "immediate connect error: 99".
    assert_eq!(errno.trim(), libc::EADDRNOTAVAIL.to_string());
    assert_eq!(count(&report, "pod-a", "connect", "EADDRNOTAVAIL"), 1, "{report:#}");
    assert_eq!(count(&report, "pod-a", "bind", "EADDRINUSE"), 0, "SO_REUSEADDR lets bind pass");
    Ok(())
}

#[test]
fn binds_to_a_taken_port_are_eaddrinuse_over_ipv4_and_ipv6() -> anyhow::Result<()> {
    common::require_root();
    let lab = netprobe_tests::lab::Lab::up(&["pod-a", "pod-b"])?;
    let np = Running::report("ports")?;
    let a6 = "fd99::10";
    let mut saw = Vec::new();
    for (addr, port) in [(lab.ip("pod-a").to_string(), 7100), (a6.to_owned(), 7101)] {
        let n = lab.sh_ok("pod-a", &format!("{} bind-taken {addr} {port} 7", labtool()))?;
        saw.push((addr, port, n.trim().parse::<u64>()?));
    }
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_best_tiers(&report);
    let total: u64 = saw.iter().map(|s| s.2).sum();
    println!(
        "pod-a bind EADDRINUSE: netprobe {}, the binder saw {saw:?}",
        count(&report, "pod-a", "bind", "EADDRINUSE")
    );
    assert_eq!(total, 14, "{saw:?}");
    assert_eq!(count(&report, "pod-a", "bind", "EADDRINUSE"), total, "{report:#}");
    assert_eq!(count(&report, "pod-a", "connect", "EADDRNOTAVAIL"), 0);
    assert_eq!(count(&report, "pod-b", "bind", "EADDRINUSE"), 0);
    let sites = report["port_errors"].as_array().expect("port_errors");
    for (addr, port, n) in &saw {
        let site = sites
            .iter()
            .find(|p| p["pod"] == "pod-a" && p["op"] == "bind" && p["addr"] == addr.as_str())
            .unwrap_or_else(|| panic!("no bind errors on {addr}: {sites:?}"));
        assert_eq!(
            (site["port"].as_u64(), site["count"].as_u64()),
            (Some(*port), Some(*n)),
            "{site}"
        );
        assert_eq!(
            (site["errno"].as_str(), site["comm"].as_str()),
            (Some("EADDRINUSE"), Some("labtool"))
        );
    }
    Ok(())
}

#[test]
fn ipv6_port_exhaustion_gives_eaddrnotavail() -> anyhow::Result<()> {
    // The port-exhaustion incident over IPv6: ten ephemeral ports (the range is shared by
    // both families), a dual-stack server, short actively closed connections.
    let (lab, _server, _) = incident("port-exhaustion")?;
    let np = Running::report("ports")?;
    let b6 = "fd99::11";
    let seen: Value = serde_json::from_str(
        &lab.sh_ok("pod-a", &format!("{} connect-loop {b6} 5003 40", labtool()))?,
    )?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_best_tiers(&report);
    common::docs::check_report(&report);
    let client_saw = seen["eaddrnotavail"].as_u64().unwrap();
    let counted = count(&report, "pod-a", "connect", "EADDRNOTAVAIL");
    println!("IPv6 pod-a EADDRNOTAVAIL: netprobe {counted}, the client {client_saw} ({seen})");
    assert!(client_saw >= 20, "{seen}");
    assert_eq!(counted, client_saw, "{report:#}");
    let sites = report["port_errors"].as_array().expect("port_errors");
    let site = sites
        .iter()
        .find(|p| p["pod"] == "pod-a" && p["op"] == "connect" && p["addr"] == b6)
        .unwrap_or_else(|| panic!("no pod-a connect errors to {b6}: {sites:?}"));
    assert_eq!((site["port"].as_u64(), site["count"].as_u64()), (Some(5003), Some(client_saw)));
    assert_eq!(site["ip_local_port_range"], "40000-40009", "{site}");
    let tw = site["time_wait_to_destination"].as_u64().unwrap();
    assert!((9..=10).contains(&tw), "TIME_WAIT to {b6}: {site}");
    let first = &report["findings"][0];
    assert_eq!(first["id"], "ephemeral_port_exhaustion", "{:#}", report["findings"]);
    Ok(())
}

/// The exhaustion finding and its facts: the range the kernel had at the error, a socket
/// without a bound port (the kernel was to pick one).
fn assert_exhaustion_at(report: &Value, netns: u64, range: &str) {
    let findings = report["findings"].as_array().expect("findings");
    let ids: Vec<&str> = findings.iter().filter_map(|f| f["id"].as_str()).collect();
    let confidence: Vec<&Value> = findings.iter().map(|f| &f["confidence"]).collect();
    let sites: Vec<String> = report["port_errors"]
        .as_array()
        .expect("port_errors")
        .iter()
        .map(|s| format!("{} {} {}", s["count"], s["ip_local_port_range"], s["bound_port"]))
        .collect();
    println!("findings {ids:?} {confidence:?}; sites (count, range, bound port) {sites:?}");
    assert_eq!(ids.first(), Some(&"ephemeral_port_exhaustion"), "{report:#}");
    assert!(!ids.contains(&"bind_conflict"), "{ids:?}");
    let f = &findings[0];
    let fact = |name: &str| {
        f["facts"].as_array().expect("facts").iter().find(|x| x["name"] == name).cloned()
    };
    let range_fact = fact("ip_local_port_range").expect("a range fact");
    assert_eq!((&range_fact["value"], &range_fact["source"]), (&range.into(), &"kernel".into()));
    let bound = fact("bound_address").expect("a bound address fact");
    assert!(bound["value"].as_str().is_some_and(|v| v.ends_with(":0")), "{bound}");
    assert!(f["remedy"].to_string().contains(&format!("now {range}")), "{f:#}");
    let site = report["port_errors"]
        .as_array()
        .expect("port_errors")
        .iter()
        .find(|s| s["netns"] == netns)
        .cloned()
        .expect("a port error site of the pod");
    assert_eq!(site["ip_local_port_range"], range, "{site}");
    assert_eq!(site["bound_port"], 0, "{site}");
}

#[test]
fn the_range_in_force_at_the_error_is_kept_when_it_changes_right_after() -> anyhow::Result<()> {
    let (lab, _server, _) = incident("port-exhaustion")?;
    let np = Running::report("ports")?;
    let b = lab.ip("pod-b").to_string();
    // Widened a few ms after the last error, well before netprobe's next 100 ms drain.
    let seen: Value = serde_json::from_str(&lab.sh_ok(
        "pod-a",
        &format!(
            "{} connect-loop {b} 5003 40 && sysctl -qw net.ipv4.ip_local_port_range='40000 60999'",
            labtool()
        ),
    )?)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    assert!(seen["eaddrnotavail"].as_u64().unwrap() > 20, "{seen}");
    assert_exhaustion_at(&report, lab.netns("pod-a")?, "40000-40009");
    Ok(())
}

#[test]
fn a_pod_deleted_right_after_exhausting_its_ports_is_still_diagnosed() -> anyhow::Result<()> {
    let (lab, _server, _) = incident("port-exhaustion")?;
    let netns = lab.netns("pod-a")?;
    let recording =
        std::env::temp_dir().join(format!("netprobe-short-lived-{}.np", std::process::id()));
    let np = Running::start(&[
        "report",
        "--duration",
        "10m",
        "--events",
        "ports",
        "--format",
        "json",
        "--record",
        recording.to_str().unwrap(),
    ])?;
    let b = lab.ip("pod-b").to_string();
    // The short-lived Job: its netns (and its TIME_WAIT sockets) go within a few ms of its
    // last error (the loop's last connect), before netprobe drains the samples.
    let script = format!(
        "ip netns exec pod-a {} connect-loop {b} 5003 40 && a=$(date +%s%N) && \
         ip netns del pod-a && echo $(( ($(date +%s%N) - a) / 1000000 ))",
        labtool()
    );
    let out = std::process::Command::new("bash").args(["-c", &script]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let (seen, delete_ms) = text.trim().rsplit_once('\n').expect("two lines");
    let seen: Value = serde_json::from_str(seen)?;
    assert!(delete_ms.trim().parse::<u64>()? < 200, "deleting took {delete_ms} ms");
    assert!(!std::path::Path::new("/run/netns/pod-a").exists());
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    assert!(seen["eaddrnotavail"].as_u64().unwrap() > 20, "{seen}");
    assert_exhaustion_at(&report, netns, "40000-40009");
    // The recording keeps what the kernel said at the error: the pod is long gone when it is read.
    let out =
        netprobe::run(&["report", "--from", recording.to_str().unwrap(), "--format", "json"])?;
    std::fs::remove_file(&recording)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_exhaustion_at(&serde_json::from_slice(&out.stdout)?, netns, "40000-40009");
    Ok(())
}

/// The capacity of the counter map `name` of the running netprobe `pid`, as the kernel has
/// it: the maps its fds hold (fdinfo's `map_id`), looked up by name with bpftool.
fn map_capacity(pid: u32, name: &str) -> anyhow::Result<u64> {
    let mut ids = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let info = std::fs::read_to_string(fd?.path()).unwrap_or_default();
        ids.extend(
            info.lines().filter_map(|l| l.strip_prefix("map_id:")).map(|v| v.trim().to_owned()),
        );
    }
    for id in ids {
        let out = std::process::Command::new("bpftool")
            .args(["-j", "map", "show", "id", &id])
            .output()?;
        let map: Value = serde_json::from_slice(&out.stdout)?;
        if map["name"] == name {
            return map["max_entries"].as_u64().ok_or_else(|| anyhow::anyhow!("{map}"));
        }
    }
    anyhow::bail!("netprobe {pid} holds no map {name}")
}

/// More (netns, call, errno) keys than the ports family's counter map holds: the failures
/// that find it full are `health.counter_overflow`, and every failure is in the counts or
/// there, once. A bind to a taken port in each of that many namespaces, held at once (about
/// 800 MB of kernel memory for a few seconds).
#[test]
fn failures_beyond_the_counter_map_are_counted_as_overflow() -> anyhow::Result<()> {
    common::require_root();
    // No lab pods; the lock keeps the other tests' port errors out of the map meanwhile.
    let _lab = netprobe_tests::lab::Lab::up(&[])?;
    let np = Running::report("ports")?;
    let capacity = map_capacity(np.pid(), "PORT_COUNTS")?;
    let n = capacity + 100;
    let out = std::process::Command::new(labtool())
        .args(["bind-taken-in-new-netns", "7200", &n.to_string()])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    common::assert_best_tiers(&report);
    let ours: std::collections::HashSet<u64> =
        seen["netns"].as_array().expect("netns").iter().map(|v| v.as_u64().unwrap()).collect();
    let rows = report["ports"].as_array().expect("ports");
    let mine: Vec<&Value> =
        rows.iter().filter(|r| ours.contains(&r["netns"].as_u64().unwrap())).collect();
    let overflow = report["health"]["counter_overflow"].as_u64().expect("counter_overflow");
    println!(
        "{n} binds to a taken port in {} namespaces; map of {capacity} keys: {} keys counted \
         ({} ours), counter_overflow {overflow}",
        ours.len(),
        rows.len(),
        mine.len()
    );
    assert_eq!((seen["eaddrinuse"].as_u64(), ours.len() as u64), (Some(n), n), "{seen}");
    assert!(mine
        .iter()
        .all(|r| r["op"] == "bind" && r["errno"] == "EADDRINUSE" && r["count"] == 1));
    // The map full to the last key; what did not fit is overflow, nothing lost or doubled.
    assert_eq!(rows.len() as u64, capacity, "keys counted");
    assert_eq!(mine.len() as u64 + overflow, n);
    Ok(())
}
