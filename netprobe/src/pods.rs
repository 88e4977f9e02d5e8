//! Names for network namespaces. A chain of resolvers is asked in order and the first that
//! knows an inode names it; a CRI (containerd) resolver for Kubernetes pod names slots in
//! ahead of the others without touching the rest.

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
    Host,
    NamedNetns,
    Process,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub netns: u32,
    pub name: String,
    pub source: Source,
    /// An nsfs path that opens this namespace (for setns).
    pub path: PathBuf,
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
                Some(Pod { netns, name: "host".into(), source: Source::Host, path })
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
                Some(Pod {
                    netns,
                    name: e.file_name().to_string_lossy().into_owned(),
                    source: Source::NamedNetns,
                    path: e.path(),
                })
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
            .map(|(netns, (pid, comm))| Pod {
                netns,
                name: format!("{comm}/{pid}"),
                source: Source::Process,
                path: Path::new(self.proc_root).join(pid.to_string()).join("ns/net"),
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
    chain: Vec<Box<dyn Resolver + Send>>,
    by_netns: BTreeMap<u32, Pod>,
}

impl PodIndex {
    /// The default chain: host, then named namespaces, then processes.
    pub fn system() -> Self {
        Self::new(vec![
            Box::new(HostNetns { proc_root: "/proc" }),
            Box::new(NamedNetns { dir: "/run/netns" }),
            Box::new(Processes { proc_root: "/proc" }),
        ])
    }

    pub fn new(chain: Vec<Box<dyn Resolver + Send>>) -> Self {
        let mut index = Self { chain, by_netns: BTreeMap::new() };
        index.refresh();
        index
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
        self.by_netns.get(&netns).map_or_else(|| unnamed(netns), |p| p.name.clone())
    }

    /// The netns a user-given name refers to: a pod name, or `netns:<inode>`.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        if let Some(inode) = name.strip_prefix("netns:").and_then(|s| s.parse().ok()) {
            return Some(inode);
        }
        self.by_netns.values().find(|p| p.name == name).map(|p| p.netns)
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.by_netns.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(u32, &'static str, Source)>);

    impl Resolver for Fixed {
        fn pods(&self) -> Vec<Pod> {
            self.0
                .iter()
                .map(|(netns, name, source)| Pod {
                    netns: *netns,
                    name: (*name).into(),
                    source: *source,
                    path: PathBuf::new(),
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
        assert_eq!(p.name, "host");
        assert_ne!(p.netns, 0);
    }
}
