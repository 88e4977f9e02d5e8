//! netprobe's CRI resolver against a real containerd (with runc and CNI) started by the
//! harness, with pods made through CRI as the kubelet makes them.

mod common;

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt,
    path::Path,
    time::{Duration, Instant},
};

use netprobe::cri;
use netprobe_tests::cri::{daemons, Cri, Pod, SUBNET};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

fn inode(path: impl AsRef<Path>) -> u64 {
    fs::metadata(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display())).ino()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn start() -> Cri {
    common::require_root();
    let cri = Cri::start().expect("containerd starts");
    eprintln!("containerd up with the pause image in {:?}", cri.startup());
    cri
}

fn add(cri: &Cri, namespace: &str, name: &str, labels: &[(&str, &str)], host: bool) -> Pod {
    let t = Instant::now();
    let pod = cri.add(namespace, name, labels, host).expect("pod sandbox runs");
    eprintln!("{namespace}/{name} up in {:?}: {:?} {:?}", t.elapsed(), pod.netns, pod.ip);
    pod
}

/// Tears down and fails on anything left: processes, sandboxes, netns, mounts, cgroups,
/// CNI files, the bridge, the directory.
fn stop(cri: Cri) {
    let t = Instant::now();
    cri.stop().expect("the harness leaves nothing behind");
    eprintln!("teardown in {:?}", t.elapsed());
}

/// Global forwarding switches that a CNI bridge with a gateway would turn on.
fn forwarding() -> [String; 2] {
    ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"]
        .map(|p| fs::read_to_string(p).expect("a sysctl"))
}

#[test]
fn resolver_names_real_pods_by_netns_inode() {
    let before = forwarding();
    let cri = start();
    let web = add(&cri, "shop", "web", &[("app", "web"), ("tier", "front")], false);
    let agent = add(&cri, "kube-system", "agent", &[("app", "agent")], true);
    let web_netns = web.netns.clone().expect("a pod network has a netns");
    assert!(
        web_netns.starts_with("/var/run/netns") && web_netns.to_string_lossy().contains("cni-")
    );
    assert_eq!(agent.netns, None, "hostNetwork pods have no netns of their own");
    let prefix = SUBNET.trim_end_matches(".0/24");
    assert!(web.ip.is_some_and(|ip| ip.to_string().starts_with(prefix)), "{:?}", web.ip);

    let rt = runtime();
    let t = Instant::now();
    let (runtime, pods) = rt.block_on(cri::snapshot(cri.socket())).expect("the resolver works");
    eprintln!(
        "resolver: {} {}, {} pods in {:?}",
        runtime.name,
        runtime.version,
        pods.len(),
        t.elapsed()
    );
    assert_eq!(runtime.name, "containerd");
    assert!(runtime.version.starts_with("1.6"), "{}", runtime.version);
    assert_eq!(pods.len(), 2, "{pods:?}");

    let got = pods.iter().find(|p| p.name == "web").expect("web is listed");
    assert_eq!((got.namespace.as_str(), got.uid.as_str()), ("shop", web.uid.as_str()));
    assert_eq!(got.sandbox_id, web.id);
    assert_eq!(
        got.labels,
        labels(&[("app", "web"), ("tier", "front")]),
        "no io.kubernetes.* labels"
    );
    assert!(
        web.labels.contains_key("io.kubernetes.pod.name"),
        "the harness sets them, as the kubelet"
    );
    let expected = inode(&web_netns);
    assert_eq!(got.netns_inode, Some(expected));
    assert_eq!(got.netns_path.as_ref(), Some(&web_netns));
    assert_eq!(inode(format!("/proc/{}/ns/net", web.pid)), expected, "the pause process is in it");
    assert_eq!(got.ip, web.ip.unwrap().to_string());

    let host = inode("/proc/self/ns/net");
    assert_eq!(inode(format!("/proc/{}/ns/net", agent.pid)), host, "hostNetwork: the node's netns");

    let got = pods.iter().find(|p| p.name == "agent").expect("agent is listed");
    assert_eq!(
        (got.namespace.as_str(), got.netns_inode, got.ip.as_str()),
        ("kube-system", None, "")
    );
    assert_eq!(got.netns_path, None);
    assert_eq!(got.labels, labels(&[("app", "agent")]));

    cri.remove("shop", "web").expect("web is deleted");
    let (_, pods) = rt.block_on(cri::snapshot(cri.socket())).expect("the resolver works");
    let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["agent"]);
    assert!(!web_netns.exists(), "CNI removed {}", web_netns.display());

    stop(cri);
    assert_eq!(forwarding(), before, "no global sysctl changed");
}

#[test]
fn hung_or_killed_containerd_is_a_clear_error_not_a_hang() {
    let mut cri = start();
    let pod = add(&cri, "shop", "db", &[("app", "db")], false);
    let rt = runtime();
    let mut client = rt.block_on(cri::Client::connect(cri.socket())).expect("connects");
    assert_eq!(rt.block_on(client.pods()).expect("lists").len(), 1);

    let daemon = the_daemon();
    // Hung: the socket accepts, nothing answers.
    unsafe { libc::kill(daemon, libc::SIGSTOP) };
    let t = Instant::now();
    let err = rt.block_on(client.pods()).expect_err("a stopped containerd does not answer");
    let hung = t.elapsed();
    unsafe { libc::kill(daemon, libc::SIGCONT) };
    eprintln!("hung containerd: {err} after {hung:?}");
    assert!(matches!(err, cri::CriError::Timeout { .. }), "{err}");
    assert!(hung < Duration::from_millis(1500), "{hung:?}");

    // Killed: its shims and the pause process stay, the socket file stays, nothing listens.
    cri.kill_containerd().expect("killed");
    assert!(running(pod.pid), "the pod outlives containerd");
    let t = Instant::now();
    let on_the_old_channel = rt.block_on(client.pods()).map(|_| ());
    let anew = rt.block_on(cri::snapshot(cri.socket())).map(|_| ());
    let both = t.elapsed();
    let old = on_the_old_channel.expect_err("no containerd, no pods");
    eprintln!("killed containerd, kept connection: {old}");
    assert!(matches!(old, cri::CriError::Lost(_) | cri::CriError::Refused(_)), "{old}");
    let new = anew.expect_err("no containerd, no pods");
    eprintln!("killed containerd, new connection: {new}");
    assert!(matches!(new, cri::CriError::Refused(_)), "{new}");
    assert!(new.to_string().contains("not running"), "{new}");

    // Back: the kept connection finds it again, with the pod.
    cri.restart_containerd().expect("containerd restarts");
    let pods = rt.block_on(client.pods()).expect("the kept client reconnects");
    assert_eq!(pods.iter().map(|p| p.sandbox_id.as_str()).collect::<Vec<_>>(), [pod.id.as_str()]);
    cri.kill_containerd().expect("killed again");
    assert!(both < Duration::from_secs(1), "{both:?}");

    // The harness cleans up without containerd: shims, pause, netns, bridge.
    let netns = pod.netns.clone().expect("a netns");
    stop(cri);
    assert!(!netns.exists(), "{} removed", netns.display());
    assert!(!running(pod.pid), "pause killed");
}

/// Alive, not a zombie waiting for its reaper.
fn running(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X']))
}

/// The harness's containerd.
fn the_daemon() -> i32 {
    let pids = daemons();
    assert_eq!(pids.len(), 1, "{pids:?}");
    pids[0]
}

#[test]
fn pods_on_the_cni_bridge_reach_each_other() {
    let cri = start();
    let server = add(&cri, "shop", "db", &[], false);
    let client = add(&cri, "shop", "web", &[], false);
    let tool = netprobe_tests::incidents::labtool();
    let mut sink = server.command(&tool).args(["sink", "8080"]).spawn().expect("labtool sink");
    std::thread::sleep(Duration::from_millis(200));
    let ip = server.ip.expect("an IP").to_string();
    let status = client.command(&tool).args(["connect", &ip, "8080", "2000"]).status();
    let _ = sink.kill();
    let _ = sink.wait();
    assert!(status.expect("labtool connect").success(), "web connects to db at {ip}:8080");
    stop(cri);
}
