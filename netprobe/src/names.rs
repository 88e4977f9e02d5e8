//! Everything that turns the kernel's numbers into names: reasons and TCP states from BTF,
//! locations from kallsyms, pods from the resolver chain, times from the clock offset.

use std::collections::HashMap;

use crate::{btf::KernelBtf, clock::Clock, kallsyms::Kallsyms, pods::PodIndex, reasons::Reasons};

pub struct Names {
    pub reasons: Reasons,
    pub tcp_states: TcpStates,
    pub kallsyms: Kallsyms,
    pub pods: PodIndex,
    pub clock: Clock,
}

/// TCP state names from the kernel's own enum (`TCP_ESTABLISHED`, ...).
#[derive(Debug, Clone, Default)]
pub struct TcpStates(HashMap<u32, String>);

impl TcpStates {
    pub fn from_btf(btf: &KernelBtf) -> Self {
        let values = btf.enum_of("TCP_ESTABLISHED").unwrap_or_default();
        Self(
            values
                .into_iter()
                .map(|(n, v)| (v, n.strip_prefix("TCP_").unwrap_or(&n).to_owned()))
                .collect(),
        )
    }

    pub fn name(&self, state: u32) -> String {
        self.0.get(&state).cloned().unwrap_or_else(|| state.to_string())
    }

    pub fn value(&self, name: &str) -> Option<u32> {
        self.0.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::pods::{Pod, Resolver, Source};

    struct One;
    impl Resolver for One {
        fn pods(&self) -> Vec<Pod> {
            vec![Pod {
                netns: 4026532999,
                meta: crate::pods::PodMeta {
                    name: "pod-b".into(),
                    namespace: None,
                    uid: None,
                    labels: Default::default(),
                    sandbox: None,
                    source: Source::NamedNetns,
                },
                path: "/run/netns/pod-b".into(),
            }]
        }
    }

    pub fn fixture() -> Names {
        Names {
            reasons: crate::reasons::tests::fixture_reasons(),
            tcp_states: TcpStates(HashMap::from([
                (1, "ESTABLISHED".into()),
                (2, "SYN_SENT".into()),
            ])),
            kallsyms: Kallsyms::parse("ffffffff81b00000 T tcp_v4_rcv\n"),
            pods: PodIndex::new(vec![Box::new(One)]),
            clock: Clock::fixed(0, 1_700_000_000_000_000_000),
        }
    }
}
