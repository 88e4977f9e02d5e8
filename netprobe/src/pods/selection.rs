//! Which pods a command looks at: `--pod`, `--namespace`, `--selector`, together (ANDed).
//! A selection is matched again at every pod refresh, so pods that start later and match are
//! included; the kernel filters samples by the matching set (SELECTED).

use std::collections::BTreeSet;

use super::{selector::LabelSelector, Pod, PodIndex};
use crate::error::Error;

#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `namespace/name`, a name unique on the node, a netns name, or `netns:<inode>`.
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<LabelSelector>,
}

impl Selection {
    pub fn pod(name: Option<String>) -> Self {
        Self { pod: name, ..Self::default() }
    }

    /// Every pod: nothing to filter.
    pub fn is_all(&self) -> bool {
        self.pod.is_none() && self.namespace.is_none() && self.labels.is_none()
    }

    /// `pod shop/web-1`, `namespace shop, app=web`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.pod {
            parts.push(format!("pod {p}"));
        }
        if let Some(ns) = &self.namespace {
            parts.push(format!("namespace {ns}"));
        }
        if let Some(l) = &self.labels {
            parts.push(format!("pods with {l}"));
        }
        if parts.is_empty() {
            "all pods".into()
        } else {
            parts.join(", ")
        }
    }

    fn matches(&self, pod: &Pod, by_name: Option<u32>) -> bool {
        let named = match (&self.pod, by_name) {
            (None, _) => true,
            (Some(_), found) => found == Some(pod.netns),
        };
        let in_namespace =
            self.namespace.as_ref().is_none_or(|ns| pod.meta.namespace.as_ref() == Some(ns));
        let labelled = self.labels.as_ref().is_none_or(|l| l.matches(&pod.meta.labels));
        named && in_namespace && labelled
    }

    /// The netns of the pods this selection matches now.
    pub fn netns(&self, pods: &PodIndex) -> BTreeSet<u32> {
        let by_name = self.pod.as_deref().and_then(|p| pods.lookup(p));
        let mut out: BTreeSet<u32> =
            pods.pods().filter(|p| self.matches(p, by_name)).map(|p| p.netns).collect();
        // `netns:<inode>` may name a netns no resolver knows.
        if let (Some(n), true) = (by_name, self.namespace.is_none() && self.labels.is_none()) {
            out.insert(n);
        }
        out
    }

    /// Like [`Selection::netns`], but a selection that matches nothing now is an error that
    /// lists what exists, so a typo does not watch nothing.
    pub fn resolve(&self, pods: &PodIndex) -> Result<BTreeSet<u32>, Error> {
        let found = self.netns(pods);
        if let (Some(name), true, true) =
            (&self.pod, found.is_empty(), self.namespace.is_none() && self.labels.is_none())
        {
            let known = pods.pods().map(Pod::name).collect();
            return Err(Error::UnknownPod { name: name.clone(), known });
        }
        if found.is_empty() && !self.is_all() {
            let mut known: Vec<String> = pods
                .pods()
                .map(|p| {
                    let labels: Vec<String> =
                        p.meta.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    if labels.is_empty() {
                        p.name()
                    } else {
                        format!("{} ({})", p.name(), labels.join(","))
                    }
                })
                .collect();
            known.sort();
            return Err(Error::NoPodSelected { selection: self.describe(), known });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::pods::{tests::meta, PodMeta, Resolver, Source};

    struct Shop;
    impl Resolver for Shop {
        fn pods(&self) -> Vec<Pod> {
            let pod = |netns, ns: &str, name, app: &str| Pod {
                netns,
                meta: PodMeta {
                    namespace: Some(ns.into()),
                    labels: [("app".to_owned(), app.to_owned())].into(),
                    source: Source::Cri,
                    ..meta(name)
                },
                path: PathBuf::new(),
            };
            vec![
                pod(1, "shop", "web-1", "web"),
                pod(2, "shop", "web-2", "web"),
                pod(3, "shop", "db-0", "db"),
                pod(4, "blog", "web-1", "web"),
            ]
        }
    }

    #[test]
    fn pod_namespace_and_selector_combine() {
        let pods = PodIndex::new(vec![Box::new(Shop)]);
        let sel = |pod: Option<&str>, ns: Option<&str>, l: Option<&str>| Selection {
            pod: pod.map(Into::into),
            namespace: ns.map(Into::into),
            labels: l.map(|l| l.parse().unwrap()),
        };
        let set = |s: Selection| s.resolve(&pods).map(|s| s.into_iter().collect::<Vec<_>>());
        assert_eq!(set(sel(Some("shop/web-1"), None, None)).unwrap(), [1]);
        assert_eq!(set(sel(None, Some("shop"), None)).unwrap(), [1, 2, 3]);
        assert_eq!(set(sel(None, None, Some("app=web"))).unwrap(), [1, 2, 4]);
        assert_eq!(set(sel(None, Some("shop"), Some("app!=db"))).unwrap(), [1, 2]);
        assert_eq!(set(sel(Some("db-0"), None, None)).unwrap(), [3]);
        assert_eq!(set(sel(Some("netns:99"), None, None)).unwrap(), [99]);
        let e = set(sel(None, Some("shop"), Some("app=cache"))).unwrap_err().to_string();
        assert!(
            e.contains("shop/db-0 (app=db)") && e.contains("namespace shop, pods with app=cache"),
            "{e}"
        );
        assert!(set(sel(Some("web-1"), None, None)).is_err(), "web-1 is in two namespaces");
    }
}
