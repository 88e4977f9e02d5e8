//! What is binned: the `--pod`'s netns, or netprobe's own (the node's, holding each pod's
//! host-side veth), its interfaces, and the pod each interface belongs to.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::{Direction, Key};
use crate::{
    error::Error,
    links::{links, Link},
    nsenter,
    pods::{netns_of, PodIndex},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// The pod it belongs to: with --pod, that pod; on the node, the pod at the other end
    /// of a host-side veth, or the node itself.
    pub pod: String,
    pub netns: u32,
}

pub struct Scope {
    pub netns: u32,
    pub label: String,
    pub interfaces: BTreeMap<u32, Interface>,
}

impl Scope {
    pub fn of(pod_filter: Option<&(String, u32)>, pods: &PodIndex) -> Result<Self, Error> {
        if let Some((name, netns)) = pod_filter {
            let path = pods.pods().find(|p| p.netns == *netns).map(|p| p.path.clone());
            let found = path.map(|p| links_in(&[(*netns, p)])).unwrap_or_default();
            let interfaces = found
                .into_iter()
                .flat_map(|(_, l)| l)
                .map(|l| (l.ifindex, Interface { name: l.name, pod: name.clone(), netns: *netns }))
                .collect();
            return Ok(Self { netns: *netns, label: format!("pod {name}"), interfaces });
        }
        let own = Path::new("/proc/self/ns/net");
        let netns = netns_of(own)
            .ok_or_else(|| Error::Layout(format!("{}: not a netns link", own.display())))?;
        let others: Vec<(u32, PathBuf)> =
            pods.pods().filter(|p| p.netns != netns).map(|p| (p.netns, p.path.clone())).collect();
        let node = links()?;
        let owner = owners(&node, &links_in(&others));
        let interfaces = node
            .into_iter()
            .map(|l| {
                let netns = owner.get(&l.ifindex).copied().unwrap_or(netns);
                (l.ifindex, Interface { name: l.name, pod: pods.name(netns), netns })
            })
            .collect();
        Ok(Self { netns, label: "this node's network namespace".to_owned(), interfaces })
    }

    /// The interfaces to bin: `only` or every one but loopback, in `directions`.
    pub fn select(&self, only: Option<&str>, directions: &[Direction]) -> Result<Vec<Key>, Error> {
        let picked: Vec<u32> = match only {
            Some(want) => {
                let found = self.interfaces.iter().find(|(_, i)| i.name == want);
                let Some((ifindex, _)) = found else {
                    return Err(Error::UnknownInterface {
                        name: want.to_owned(),
                        scope: self.label.clone(),
                        known: self.interfaces.values().map(|i| i.name.clone()).collect(),
                    });
                };
                vec![*ifindex]
            }
            None => {
                self.interfaces.iter().filter(|(_, i)| i.name != "lo").map(|(x, _)| *x).collect()
            }
        };
        Ok(directions.iter().flat_map(|d| picked.iter().map(move |i| (*d, *i))).collect())
    }

    pub fn name(&self, ifindex: u32) -> String {
        self.interfaces.get(&ifindex).map_or_else(|| format!("if{ifindex}"), |i| i.name.clone())
    }
}

fn links_in(namespaces: &[(u32, PathBuf)]) -> Vec<(u32, Vec<Link>)> {
    nsenter::each(namespaces, |_| links().unwrap_or_default())
}

/// The netns at the other end of each of `node`'s veths, by ifindex: the namespace with an
/// interface whose index is the veth's iflink and whose iflink is the veth's index.
pub fn owners(node: &[Link], others: &[(u32, Vec<Link>)]) -> BTreeMap<u32, u32> {
    let peer = |l: &Link| {
        others.iter().find_map(|(netns, ls)| {
            ls.iter().any(|p| p.ifindex == l.iflink && p.iflink == l.ifindex).then_some(*netns)
        })
    };
    node.iter()
        .filter(|l| l.iflink != l.ifindex)
        .filter_map(|l| Some((l.ifindex, peer(l)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ifindex: u32, name: &str, iflink: u32) -> Link {
        Link { ifindex, name: name.into(), iflink }
    }

    #[test]
    fn host_veths_belong_to_the_pod_at_their_other_end() {
        let node = [
            link(1, "lo", 1),
            link(5, "np-br0", 5),
            link(6, "np-pod-a", 2),
            link(7, "np-pod-b", 2),
        ];
        let pods = [
            (100, vec![link(1, "lo", 1), link(2, "eth0", 6)]),
            (200, vec![link(1, "lo", 1), link(2, "eth0", 7)]),
            // A veth between two pods names no host interface.
            (300, vec![link(2, "peer", 9)]),
        ];
        let got = owners(&node, &pods);
        assert_eq!(got, BTreeMap::from([(6, 100), (7, 200)]));
    }
}
