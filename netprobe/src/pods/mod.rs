//! Names for network namespaces. A chain of resolvers is asked in order and the first that
//! knows an inode names it: the container runtime (CRI) for Kubernetes pods, then the host,
//! named namespaces and processes (docs/pods.md).

pub mod runtime;
pub mod selection;
pub mod selector;

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Where a name came from, shown by `--pod` errors so users know what they can type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A Kubernetes pod, named by the container runtime.
    Cri,
    Host,
    NamedNetns,
    Process,
}

/// Who a netns is: what every output names it by. Recordings carry it (docs/recording.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "MetaOnWire")]
pub struct PodMeta {
    /// The pod's name (Kubernetes), or the netns name, `host`, `comm/pid`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The pod's own labels, without the io.kubernetes.* ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The CRI sandbox id: a netns inode reused by a new pod is a new pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    pub source: Source,
}

impl PodMeta {
    /// `namespace/name` for Kubernetes pods, else the name: what text shows and `--pod` takes.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Recordings of version 1 name pods with a bare string.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum MetaOnWire {
    Name(String),
    Meta {
        name: String,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        uid: Option<String>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        sandbox: Option<String>,
        source: Source,
    },
}

impl From<MetaOnWire> for PodMeta {
    fn from(w: MetaOnWire) -> Self {
        match w {
            MetaOnWire::Name(name) => {
                let source = match name.as_str() {
                    "host" => Source::Host,
                    n if n.contains('/') => Source::Process,
                    _ => Source::NamedNetns,
                };
                PodMeta {
                    name,
                    namespace: None,
                    uid: None,
                    labels: BTreeMap::new(),
                    sandbox: None,
                    source,
                }
            }
            MetaOnWire::Meta { name, namespace, uid, labels, sandbox, source } => {
                PodMeta { name, namespace, uid, labels, sandbox, source }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub netns: u32,
    pub meta: PodMeta,
    /// An nsfs path that opens this namespace (for setns).
    pub path: PathBuf,
}

impl Pod {
    /// A pod that is only a name (host, named netns, process).
    fn plain(netns: u32, name: String, source: Source, path: PathBuf) -> Self {
        let meta = PodMeta {
            name,
            namespace: None,
            uid: None,
            labels: BTreeMap::new(),
            sandbox: None,
            source,
        };
        Self { netns, meta, path }
    }

    pub fn name(&self) -> String {
        self.meta.display()
    }
}

pub trait Resolver {
    /// Every (netns inode, name) this resolver knows now.
    fn pods(&self) -> Vec<Pod>;
}

/// The host's namespace, init_net: where kernel threads live. kthreadd (PID 2) is asked
/// first because PID 1 may be a sandbox's init whose links even root cannot read.
pub struct HostNetns {
    pub proc_root: &'static str,
}

impl Resolver for HostNetns {
    fn pods(&self) -> Vec<Pod> {
        let root = Path::new(self.proc_root);
        let kthreadd =
            fs::read_to_string(root.join("2/comm")).is_ok_and(|c| c.trim() == "kthreadd");
        let candidates = if kthreadd { &["2", "1"][..] } else { &["1"][..] };
        candidates
            .iter()
            .map(|pid| root.join(pid).join("ns/net"))
            .find_map(|path| {
                let netns = netns_of(&path)?;
                Some(Pod::plain(netns, "host".into(), Source::Host, path))
            })
            .into_iter()
            .collect()
    }
}

/// Namespaces bind-mounted under a directory, as `ip netns add` and CNI plugins make them.
pub struct NamedNetns {
    pub dir: &'static str,
}

impl Resolver for NamedNetns {
    fn pods(&self) -> Vec<Pod> {
        let Ok(entries) = fs::read_dir(self.dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                // stat() of the bind mount is the nsfs inode itself.
                let netns = u32::try_from(fs::metadata(e.path()).ok()?.ino()).ok()?;
                let name = e.file_name().to_string_lossy().into_owned();
                Some(Pod::plain(netns, name, Source::NamedNetns, e.path()))
            })
            .collect()
    }
}

/// Any other namespace a process lives in, named `comm/pid` after its lowest PID.
pub struct Processes {
    pub proc_root: &'static str,
}

impl Resolver for Processes {
    fn pods(&self) -> Vec<Pod> {
        let Ok(entries) = fs::read_dir(self.proc_root) else { return Vec::new() };
        let mut first: BTreeMap<u32, (u32, String)> = BTreeMap::new();
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Some(netns) = netns_of(&e.path().join("ns/net")) else { continue };
            let slot = first.entry(netns).or_insert((u32::MAX, String::new()));
            if pid < slot.0 {
                let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                *slot = (pid, comm.trim().to_owned());
            }
        }
        first
            .into_iter()
            .map(|(netns, (pid, comm))| {
                let path = Path::new(self.proc_root).join(pid.to_string()).join("ns/net");
                Pod::plain(netns, format!("{comm}/{pid}"), Source::Process, path)
            })
            .collect()
    }
}

/// The inode in a `net:[4026531840]` link.
pub fn netns_of(link: &Path) -> Option<u32> {
    let target = fs::read_link(link).ok()?;
    target.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The name of a netns no resolver knows.
pub fn unnamed(netns: u32) -> String {
    match netns {
        0 => "unknown".into(),
        n => format!("netns:{n}"),
    }
}

/// A snapshot of every resolver's answers, first resolver wins.
pub struct PodIndex {
    runtime: Option<std::sync::Arc<runtime::Runtime>>,
    chain: Vec<Box<dyn Resolver + Send>>,
    by_netns: BTreeMap<u32, Pod>,
}

/// Shared, so that the runtime's status can be read while it resolves.
impl Resolver for std::sync::Arc<runtime::Runtime> {
    fn pods(&self) -> Vec<Pod> {
        self.as_ref().pods()
    }
}

impl PodIndex {
    /// The default chain: the container runtime at `cri` (if any), host, named namespaces,
    /// then processes.
    pub fn system(cri: Option<PathBuf>) -> Self {
        let runtime = cri.map(|socket| std::sync::Arc::new(runtime::Runtime::start(socket)));
        let mut chain: Vec<Box<dyn Resolver + Send>> = Vec::new();
        if let Some(r) = &runtime {
            chain.push(Box::new(r.clone()));
        }
        chain.push(Box::new(HostNetns { proc_root: "/proc" }));
        chain.push(Box::new(NamedNetns { dir: "/run/netns" }));
        chain.push(Box::new(Processes { proc_root: "/proc" }));
        let mut index = Self { runtime, chain, by_netns: BTreeMap::new() };
        index.refresh();
        index
    }

    #[cfg(test)]
    pub fn new(chain: Vec<Box<dyn Resolver + Send>>) -> Self {
        let mut index = Self { runtime: None, chain, by_netns: BTreeMap::new() };
        index.refresh();
        index
    }

    /// The container runtime resolver, when one is configured.
    pub fn runtime(&self) -> Option<&runtime::Runtime> {
        self.runtime.as_deref()
    }

    pub fn refresh(&mut self) {
        self.by_netns.clear();
        for resolver in &self.chain {
            for pod in resolver.pods() {
                self.by_netns.entry(pod.netns).or_insert(pod);
            }
        }
    }

    pub fn contains(&self, netns: u32) -> bool {
        self.by_netns.contains_key(&netns)
    }

    pub fn name(&self, netns: u32) -> String {
        self.by_netns.get(&netns).map_or_else(|| unnamed(netns), Pod::name)
    }

    /// The netns a user-given name refers to: `namespace/name`, a pod name that is unique on
    /// the node, a netns name, `host`, `comm/pid`, or `netns:<inode>`.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        if let Some(inode) = name.strip_prefix("netns:").and_then(|s| s.parse().ok()) {
            return Some(inode);
        }
        if let Some(p) = self.by_netns.values().find(|p| p.name() == name) {
            return Some(p.netns);
        }
        let mut bare = self.by_netns.values().filter(|p| p.meta.name == name);
        match (bare.next(), bare.next()) {
            (Some(p), None) => Some(p.netns),
            _ => None,
        }
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.by_netns.values()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A plain pod's meta, for fixtures.
    pub fn meta(name: &str) -> PodMeta {
        Pod::plain(0, name.into(), Source::NamedNetns, PathBuf::new()).meta
    }

    #[test]
    fn version_1_names_read_as_plain_pods_and_cri_pods_show_their_namespace() {
        let old: BTreeMap<u32, PodMeta> =
            serde_json::from_str(r#"{"1": "host", "2": "pod-a", "3": "nginx/7"}"#).unwrap();
        let sources: Vec<Source> = old.values().map(|m| m.source).collect();
        assert_eq!(sources, [Source::Host, Source::NamedNetns, Source::Process]);
        let cri = PodMeta {
            namespace: Some("shop".into()),
            uid: Some("u-1".into()),
            source: Source::Cri,
            ..meta("checkout-7d9f")
        };
        assert_eq!(cri.display(), "shop/checkout-7d9f");
        let back: PodMeta = serde_json::from_str(&serde_json::to_string(&cri).unwrap()).unwrap();
        assert_eq!(back, cri);
        assert_eq!(
            serde_json::to_string(&meta("pod-a")).unwrap(),
            r#"{"name":"pod-a","source":"named_netns"}"#
        );
    }

    #[test]
    fn a_bare_pod_name_resolves_only_when_unique_on_the_node() {
        struct Two;
        impl Resolver for Two {
            fn pods(&self) -> Vec<Pod> {
                ["shop", "blog"]
                    .iter()
                    .enumerate()
                    .map(|(i, ns)| Pod {
                        netns: 10 + i as u32,
                        meta: PodMeta {
                            namespace: Some((*ns).into()),
                            source: Source::Cri,
                            ..meta("web")
                        },
                        path: PathBuf::new(),
                    })
                    .chain([Pod {
                        netns: 12,
                        meta: PodMeta {
                            namespace: Some("shop".into()),
                            source: Source::Cri,
                            ..meta("db")
                        },
                        path: PathBuf::new(),
                    }])
                    .collect()
            }
        }
        let idx = PodIndex::new(vec![Box::new(Two)]);
        assert_eq!(idx.lookup("shop/web"), Some(10));
        assert_eq!(idx.lookup("blog/web"), Some(11));
        assert_eq!(idx.lookup("web"), None, "two pods are called web");
        assert_eq!(idx.lookup("db"), Some(12));
        assert_eq!(idx.name(12), "shop/db");
    }

    struct Fixed(Vec<(u32, &'static str, Source)>);

    impl Resolver for Fixed {
        fn pods(&self) -> Vec<Pod> {
            self.0
                .iter()
                .map(|(netns, name, source)| {
                    Pod::plain(*netns, (*name).into(), *source, PathBuf::new())
                })
                .collect()
        }
    }

    fn index() -> PodIndex {
        PodIndex::new(vec![
            Box::new(Fixed(vec![(1, "host", Source::Host)])),
            Box::new(Fixed(vec![
                (2, "pod-a", Source::NamedNetns),
                (1, "shadowed", Source::NamedNetns),
            ])),
            Box::new(Fixed(vec![
                (2, "sleep/42", Source::Process),
                (3, "nginx/7", Source::Process),
            ])),
        ])
    }

    #[test]
    fn earlier_resolvers_win() {
        let idx = index();
        assert_eq!(idx.name(1), "host");
        assert_eq!(idx.name(2), "pod-a");
        assert_eq!(idx.name(3), "nginx/7");
    }

    #[test]
    fn unknown_namespaces_print_their_inode() {
        let idx = index();
        assert_eq!(idx.name(99), "netns:99");
        assert_eq!(idx.name(0), "unknown");
    }

    #[test]
    fn lookup_by_name_or_inode() {
        let idx = index();
        assert_eq!(idx.lookup("pod-a"), Some(2));
        assert_eq!(idx.lookup("nginx/7"), Some(3));
        assert_eq!(idx.lookup("netns:77"), Some(77));
        assert_eq!(idx.lookup("shadowed"), None);
        assert_eq!(idx.lookup("pod-z"), None);
    }

    #[test]
    fn the_real_host_resolves() {
        let host = HostNetns { proc_root: "/proc" }.pods();
        // Reading another process's netns needs root (ptrace access); as root it must resolve.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let p = host.first().expect("the host netns resolves as root");
        assert_eq!(p.name(), "host");
        assert_ne!(p.netns, 0);
    }
}
