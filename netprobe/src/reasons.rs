//! Drop-reason names, read from the running kernel's `enum skb_drop_reason` (and
//! `enum skb_drop_reason_subsys`, where the kernel has subsystems). Values the kernel did not
//! name print as their number; on a kernel without drop reasons, [`NONE`].

use std::collections::HashMap;

use crate::btf::KernelBtf;

/// Subsystem reasons carry the subsystem id above this shift.
const SUBSYS_SHIFT: u32 = 16;
const REASON_PREFIX: &str = "SKB_DROP_REASON_";
const SUBSYS_PREFIX: &str = "SKB_DROP_REASON_SUBSYS_";

/// The reason of every drop on a kernel that has no drop reasons (before 5.17): its
/// kfree_skb gives none, and the programs count 0. Lower case, so never a kernel enumerator.
pub const NONE: &str = "none";

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reasons {
    core: HashMap<u32, String>,
    subsystems: HashMap<u32, String>,
}

impl Reasons {
    pub fn from_btf(btf: &KernelBtf) -> Self {
        let strip = |prefix: &str, values: Vec<(String, u32)>| {
            values
                .into_iter()
                .map(|(n, v)| (v, n.strip_prefix(prefix).unwrap_or(&n).to_owned()))
                .collect()
        };
        Self {
            core: strip(REASON_PREFIX, btf.enum_values("skb_drop_reason").unwrap_or_default()),
            subsystems: strip(
                SUBSYS_PREFIX,
                btf.enum_values("skb_drop_reason_subsys").unwrap_or_default(),
            ),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.core.is_empty()
    }

    /// The value `name` gives, for names `name` makes.
    pub fn value(&self, name: &str) -> Option<u32> {
        if let Some((subsys, code)) = name.split_once(':') {
            let (id, _) = self.subsystems.iter().find(|(_, n)| *n == subsys)?;
            return Some(id << SUBSYS_SHIFT | code.parse::<u32>().ok()?);
        }
        let core = self.core.iter().find(|(_, n)| *n == name).map(|(v, _)| *v);
        core.or_else(|| name.parse().ok())
    }

    pub fn name(&self, raw: u32) -> String {
        if self.is_empty() && raw == 0 {
            return NONE.to_owned();
        }
        let subsys = raw >> SUBSYS_SHIFT;
        if subsys == 0 {
            if let Some(n) = self.core.get(&raw) {
                return n.clone();
            }
        } else if let Some(s) = self.subsystems.get(&subsys) {
            return format!("{s}:{}", raw & ((1 << SUBSYS_SHIFT) - 1));
        }
        raw.to_string()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::btf::fixture;

    pub fn fixture_reasons() -> Reasons {
        Reasons::from_btf(&KernelBtf::from_bytes(&fixture::blob()).unwrap())
    }

    #[test]
    fn names_come_from_the_enum() {
        let r = fixture_reasons();
        for (enumerator, value) in fixture::REASONS {
            assert_eq!(r.name(value), enumerator.strip_prefix(REASON_PREFIX).unwrap());
        }
    }

    #[test]
    fn unknown_values_print_as_numbers() {
        let r = fixture_reasons();
        assert_eq!(r.name(999), "999");
        assert_eq!(r.name((7 << 16) | 1), ((7 << 16) | 1).to_string());
    }

    #[test]
    fn subsystem_reasons_split_on_bit_16() {
        let r = fixture_reasons();
        assert_eq!(r.name((3 << 16) | 5), "OPENVSWITCH:5");
    }

    #[test]
    fn a_kernel_without_reasons_gives_none() {
        let r = Reasons::default();
        assert!(r.is_empty());
        assert_eq!(r.name(0), NONE);
        // "none" is no value the kernel gave: JSON reason_code is null.
        assert_eq!(r.value(NONE), None);
        // With the enum, 0 is the kernel's own name (or number), never the placeholder.
        assert_ne!(fixture_reasons().name(0), NONE);
    }

    #[test]
    fn names_give_their_values_back() {
        let r = fixture_reasons();
        for raw in fixture::REASONS.iter().map(|(_, v)| *v).chain([999, (3 << 16) | 5]) {
            assert_eq!(r.value(&r.name(raw)), Some(raw));
        }
    }
}
