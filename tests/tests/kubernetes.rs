//! netprobe on real Kubernetes pods: sandboxes made through CRI on a real containerd (with
//! runc and the CNI bridge plugin), named by netprobe through the same CRI socket. The
//! incidents run inside them unchanged, and every output names `namespace/name`.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use common::{assert_finding_named, require_root, settle};
use netprobe_tests::{
    cri::{Cri, Pod, SOCKET},
    incidents,
    lab::Lab,
    netprobe::{self, Running},
    traffic::udp,
};

fn v4(pod: &Pod) -> Ipv4Addr {
    match pod.ip {
        Some(IpAddr::V4(ip)) => ip,
        other => panic!("{}/{}: no IPv4 address: {other:?}", pod.namespace, pod.name),
    }
}

/// netprobe with the harness's runtime socket.
fn start(args: &[&str]) -> anyhow::Result<Running> {
    Running::start(&[&["--cri-socket", SOCKET], args].concat())
}

/// The incident's pods as CRI pods: pod-a is shop/web, pod-b shop/api, pod-c blog/cron.
fn incident_pods(cri: &Cri, aliases: &[&str]) -> anyhow::Result<(Vec<Pod>, Lab)> {
    let k8s = [("pod-a", "shop", "web"), ("pod-b", "shop", "api"), ("pod-c", "blog", "cron")];
    let mut pods = Vec::new();
    for alias in aliases {
        let (_, ns, name) = k8s.iter().find(|k| k.0 == *alias).expect("a known alias");
        pods.push(cri.add(ns, name, &[("app", name)], false)?);
    }
    let lab_pods: Vec<(&str, &Path, Ipv4Addr)> = aliases
        .iter()
        .zip(&pods)
        .map(|(alias, p)| (*alias, p.netns.as_deref().expect("a netns"), v4(p)))
        .collect();
    let lab = Lab::on_cri(&lab_pods)?;
    Ok((pods, lab))
}

fn display(alias: &str) -> String {
    match alias {
        "pod-a" => "shop/web",
        "pod-b" => "shop/api",
        "pod-c" => "blog/cron",
        other => other,
    }
    .to_owned()
}

#[test]
fn incidents_in_cri_pods_rank_first_under_their_kubernetes_names() -> anyhow::Result<()> {
    require_root();
    for name in ["closed-port", "conntrack-full", "port-exhaustion", "listen-overflow"] {
        let incident = incidents::find(name).expect("an incident");
        let cri = Cri::start()?;
        let (pods, lab) = incident_pods(&cri, incident.pods)?;
        let _running = (incident.setup)(&lab)?;
        let recording = std::env::temp_dir().join(format!("netprobe-k8s-{name}.np"));
        let np = start(&[
            "report",
            "--duration",
            "10m",
            "--events",
            incident.events,
            "--format",
            "json",
            "--record",
            recording.to_str().expect("utf-8"),
        ])?;
        (incident.provoke)(&lab)?;
        settle();
        let report: serde_json::Value = serde_json::from_str(&np.stop()?)?;
        assert_finding_named(&report, incident, display);
        let (ns, name) = display(incident.involved[0])
            .split_once('/')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .expect("ns/name");
        let listed =
            report["pods"].as_array().expect("pods").iter().find(|p| p["name"] == name.as_str());
        let listed = listed
            .unwrap_or_else(|| panic!("{name}: the report lists its pods: {:#}", report["pods"]));
        assert_eq!(
            (listed["namespace"].as_str(), listed["source"].as_str()),
            (Some(ns.as_str()), Some("cri"))
        );
        assert_eq!(listed["labels"]["app"], name.as_str(), "labels where the report lists pods");
        assert!(listed["uid"].as_str().is_some_and(|u| u.len() == 36), "{listed}");
        // The text report read back from the recording names them the same way.
        let text = netprobe::run(&["report", "--from", recording.to_str().expect("utf-8")])?;
        let _ = std::fs::remove_file(&recording);
        let text = String::from_utf8_lossy(&text.stdout);
        let at_fault = display(incident.involved[0]);
        assert!(text.contains(&format!("[{at_fault}]")), "{name}: {text}");
        drop((lab, pods));
        cri.stop()?;
    }
    Ok(())
}

/// `watch --format json` lines of drop samples, by pod.
fn drops_by_pod(out: &str) -> std::collections::BTreeMap<String, u64> {
    let mut by = std::collections::BTreeMap::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
        if v["type"] == "drop" && v["reason"] == "NO_SOCKET" {
            // Kubernetes pods' records carry their namespace and uid too.
            assert_eq!(v["namespace"], "shop", "{v}");
            assert!(v["uid"].as_str().is_some_and(|u| u.len() == 36), "{v}");
            *by.entry(v["pod"].as_str().expect("a pod").to_owned()).or_insert(0) += 1;
        }
    }
    by
}

#[test]
fn a_selector_picks_exactly_the_matching_pods_including_later_ones() -> anyhow::Result<()> {
    require_root();
    let cri = Cri::start()?;
    let web1 = cri.add("shop", "web-1", &[("app", "web")], false)?;
    let db = cri.add("shop", "db-0", &[("app", "db")], false)?;
    let other = cri.add("blog", "web-1", &[("app", "web")], false)?;
    let watch =
        start(&["watch", "-n", "shop", "-l", "app=web", "--events", "drops", "--format", "json"])?;
    let web2 = cri.add("shop", "web-2", &[("app", "web"), ("tier", "front")], false)?;
    // The selection is matched again at the next pod refresh (once a second).
    thread::sleep(Duration::from_millis(2500));
    let lab = Lab::on_cri(&[
        ("web-1", web1.netns.as_deref().expect("netns"), v4(&web1)),
        ("db-0", db.netns.as_deref().expect("netns"), v4(&db)),
    ])?;
    for (to, n) in [(&web1, 11), (&web2, 7), (&db, 5), (&other, 3)] {
        udp(&lab, "db-0", &v4(to).to_string(), 9999, n)?;
    }
    udp(&lab, "web-1", &v4(&db).to_string(), 9999, 4)?;
    settle();
    let out = watch.stop()?;
    let got = drops_by_pod(&out);
    let want = [("shop/web-1".to_owned(), 11), ("shop/web-2".to_owned(), 7)].into();
    assert_eq!(got, want, "only shop's app=web pods, exactly, web-2 although it started later");
    drop(lab);
    cri.stop()
}

#[test]
fn a_deleted_pod_keeps_its_name_and_its_successor_counts_apart() -> anyhow::Result<()> {
    require_root();
    let cri = Cri::start()?;
    let client = cri.add("shop", "client", &[], false)?;
    let old = cri.add("jobs", "nightly-1", &[("app", "nightly")], false)?;
    let report = start(&["report", "--duration", "10m", "--events", "drops", "--format", "json"])?;
    let lab = |p: &Pod| Lab::on_cri(&[("client", client.netns.as_deref().expect("netns"), v4(p))]);
    udp(&lab(&old)?, "client", &v4(&old).to_string(), 9999, 10)?;
    settle();
    let old_inode = std::fs::metadata(old.netns.as_deref().expect("netns"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
    cri.remove("jobs", "nightly-1")?;
    // Gone for more than a refresh before the next one comes (a CronJob's next run).
    thread::sleep(Duration::from_millis(1500));
    let new = cri.add("jobs", "nightly-2", &[("app", "nightly")], false)?;
    let new_inode = std::fs::metadata(new.netns.as_deref().expect("netns"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
    println!("netns inode {old_inode} then {new_inode} (reused: {})", old_inode == new_inode);
    thread::sleep(Duration::from_millis(1500));
    udp(&lab(&new)?, "client", &v4(&new).to_string(), 9999, 7)?;
    settle();
    let r: serde_json::Value = serde_json::from_str(&report.stop()?)?;
    let count = |pod: &str| -> u64 {
        r["drops"]
            .as_array()
            .expect("drops")
            .iter()
            .filter(|d| d["pod"] == pod && d["reason"] == "NO_SOCKET")
            .map(|d| d["count"].as_u64().expect("a count"))
            .sum()
    };
    assert_eq!((count("jobs/nightly-1"), count("jobs/nightly-2")), (10, 7), "{:#}", r["drops"]);
    cri.stop()
}

#[test]
fn containerd_going_away_mid_run_is_said_once_and_counting_goes_on() -> anyhow::Result<()> {
    require_root();
    let mut cri = Cri::start()?;
    let a = cri.add("shop", "web", &[], false)?;
    let b = cri.add("shop", "api", &[], false)?;
    let lab = Lab::on_cri(&[
        ("web", a.netns.as_deref().expect("netns"), v4(&a)),
        ("api", b.netns.as_deref().expect("netns"), v4(&b)),
    ])?;
    let mut report =
        start(&["report", "--duration", "10m", "--events", "drops", "--format", "json"])?;
    udp(&lab, "web", &v4(&b).to_string(), 9999, 6)?;
    cri.kill_containerd()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !report.stderr_now().iter().any(|l| l.contains("went away")) {
        assert!(Instant::now() < deadline, "netprobe never said the runtime went away");
        thread::sleep(Duration::from_millis(100));
    }
    udp(&lab, "web", &v4(&b).to_string(), 9999, 9)?;
    settle();
    let stderr = report.stderr_now();
    let r: serde_json::Value = serde_json::from_str(&report.stop()?)?;
    let said: Vec<&String> = stderr.iter().filter(|l| l.contains("container runtime")).collect();
    assert_eq!(said.len(), 1, "said once: {said:?}");
    let api: u64 = r["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .filter(|d| d["pod"] == "shop/api" && d["reason"] == "NO_SOCKET")
        .map(|d| d["count"].as_u64().expect("a count"))
        .sum();
    assert_eq!(api, 15, "counted on under the name the runtime gave: {:#}", r["drops"]);
    drop(lab);
    cri.stop()
}

/// Whether this process's bounding set holds capability `name` (`BPF`, `SYS_ADMIN`, ...).
fn held(name: &str) -> bool {
    let number = match name {
        "NET_ADMIN" => 12,
        "SYS_PTRACE" => 19,
        "SYS_ADMIN" => 21,
        "SYS_RESOURCE" => 24,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("capability {other}: add its number here"),
    };
    let status = std::fs::read_to_string("/proc/self/status").expect("own status");
    let bounding = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).expect("CapBnd");
    u64::from_str_radix(bounding.trim(), 16).expect("hex") & (1 << number) != 0
}

/// The rendered DaemonSet (deploy/kubernetes), as JSON.
fn daemonset() -> anyhow::Result<serde_json::Value> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes");
    let yaml = std::process::Command::new("kubectl").args(["kustomize", root]).output()?;
    anyhow::ensure!(yaml.status.success(), "{}", String::from_utf8_lossy(&yaml.stderr));
    // PyYAML comes with kubernetes-validate's venv (scripts/install-deps).
    let mut py = std::process::Command::new("/opt/netprobe-tools/venv/bin/python")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(&mut py.stdin.take().expect("piped"), &yaml.stdout)?;
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&py.wait_with_output()?.stdout)?;
    docs.into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .ok_or_else(|| anyhow::anyhow!("no DaemonSet"))
}

#[test]
fn the_image_runs_as_the_daemonset_runs_it_and_names_the_cri_pods() -> anyhow::Result<()> {
    require_root();
    let ds = daemonset()?;
    let spec = &ds["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map_or_else(Vec::new, |a| {
            a.iter().filter_map(|s| s.as_str().map(String::from)).collect()
        })
    };
    let cri = Cri::start()?;
    let dir = std::env::temp_dir().join(format!("netprobe-image-{}", std::process::id()));
    let archive = netprobe_tests::cri::image::netprobe(&netprobe::bin(), &dir)?;
    cri.import(&archive)?;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        c["image"].as_str(),
        Some(netprobe_tests::cri::image::NETPROBE),
        "the image deploy/ names"
    );

    let web = cri.add("shop", "web", &[], false)?;
    let api = cri.add("shop", "api", &[("app", "api")], false)?;
    let node =
        cri.add_sandbox("netprobe", "netprobe-x7k2p", &[], false, spec["hostPID"] == true)?;
    let ip = v4(&node).to_string();
    // The hostPath volumes, where the DaemonSet mounts them; the runtime socket is the harness's.
    let volumes = spec["volumes"].as_array().expect("volumes");
    let mounts = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            let v = volumes.iter().find(|v| v["name"] == m["name"]).expect("a volume");
            let host = v["hostPath"]["path"].as_str().expect("a hostPath");
            let host = if host == "/run/containerd/containerd.sock" { SOCKET } else { host };
            netprobe_tests::cri::HostMount {
                host: host.into(),
                container: m["mountPath"].as_str().expect("a path").into(),
                readonly: m["readOnly"] == true,
                host_to_container: m["mountPropagation"] == "HostToContainer",
            }
        })
        .collect();
    let security = &c["securityContext"];
    // This machine's root lacks CAP_SYS_RESOURCE (needed only before 5.11, to raise memlock):
    // runc cannot grant what it does not hold, so that one alone is left out here.
    let (caps, missing): (Vec<String>, Vec<String>) =
        strings(&security["capabilities"]["add"]).into_iter().partition(|c| held(c));
    assert_eq!(missing, ["SYS_RESOURCE"], "only the capability this machine lacks is left out");
    let agent = netprobe_tests::cri::Container {
        name: "netprobe".into(),
        image: netprobe_tests::cri::image::NETPROBE.into(),
        args: strings(&c["args"]).into_iter().map(|a| a.replace("$(POD_IP)", &ip)).collect(),
        add_capabilities: caps,
        readonly_rootfs: security["readOnlyRootFilesystem"] == true,
        host_pid: spec["hostPID"] == true,
        mounts,
    };
    cri.run_container(&node, &agent)?;

    // Scraped from another pod on the bridge, as Prometheus would reach it.
    let lab = Lab::on_cri(&[
        ("web", web.netns.as_deref().expect("netns"), v4(&web)),
        ("api", api.netns.as_deref().expect("netns"), v4(&api)),
    ])?;
    let port = c["ports"][0]["containerPort"].as_u64().expect("a port");
    let get = |path: &str| lab.sh("web", &format!("curl -s -m 2 http://{ip}:{port}{path}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(&get("/readyz")?.stdout).contains("ready") {
        assert!(
            Instant::now() < deadline,
            "the agent never got ready:\n{}",
            cri.container_log(&node, "netprobe")
        );
        thread::sleep(Duration::from_millis(250));
    }
    udp(&lab, "web", &v4(&api).to_string(), 9999, 20)?;
    let want = r#"netprobe_drops_total{namespace="shop",pod="api",reason="NO_SOCKET"} 20"#;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = get("/metrics")?;
        let metrics = String::from_utf8_lossy(&out.stdout).into_owned();
        let metrics =
            format!("{metrics}\n(curl: {} {})", out.status, String::from_utf8_lossy(&out.stderr));
        let line = metrics
            .lines()
            .find(|l| l.starts_with("netprobe_drops_total") && l.contains(r#"pod="api""#));
        if line.is_some_and(|l| l.contains(r#"namespace="shop""#) && l.ends_with(" 20")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{want} not in:\n{metrics}\n{}",
            cri.container_log(&node, "netprobe")
        );
        thread::sleep(Duration::from_millis(250));
    }
    drop(lab);
    cri.stop()
}
