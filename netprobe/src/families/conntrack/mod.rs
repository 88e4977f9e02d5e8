//! Conntrack trouble per pod (incidents 02, 04): table full, insert races, early drops, and
//! the table's utilisation. The kernel keeps these per netns in /proc/net/stat/nf_conntrack,
//! which netprobe polls inside every pod; drops themselves are counted exactly by the drops
//! family, where a verdict drop in nf_hook_slow (conntrack) and a rule drop in nft_do_chain
//! (policy) are told apart by location. The kernel's rate-limited "table full" console line
//! is passed on as a signal: newer kernels name the netns ("table full in netns N"), older
//! ones (5.10 to 6.12) do not, and those lines count node-wide, as netns 0 (`unknown`).

pub mod findings;
pub mod metrics;
pub mod report;
pub mod snapshot;
pub mod stats;
pub mod timeline;

use crate::{
    btf::ArgKind,
    families::conntrack::stats::Stats,
    hooks::{self, Exit, Function, Tracepoint, Variant},
    names::Names,
    wire,
};

pub const TRACEPOINTS: &[&Tracepoint] = &[&Tracepoint {
    category: "printk",
    name: "console",
    btf_args: &[],
    fields: &["msg"],
    programs: [None, None, Some("conntrack_console")],
    slot: |l| &mut l.printk_console,
}];

const NF_CONNTRACK_ALLOC: &str = "__nf_conntrack_alloc";
const NF_CONNTRACK_CONFIRM: &str = "__nf_conntrack_confirm";

pub const FUNCTIONS: &[&Function] = &[
    &Function {
        name: NF_CONNTRACK_ALLOC,
        module: Some("nf_conntrack"),
        args: &[ArgKind::StructPtr("net")],
        slot: |l| &mut l.ct_alloc_fn,
    },
    &Function {
        name: NF_CONNTRACK_CONFIRM,
        module: Some("nf_conntrack"),
        args: &[ArgKind::StructPtr("sk_buff")],
        slot: |l| &mut l.ct_confirm_fn,
    },
];

/// Beside the console messages, exact per netns at the returns of nf_conntrack's own
/// functions: the failed allocations of a full table (__nf_conntrack_alloc) and the failed
/// inserts (__nf_conntrack_confirm: a clash it could not resolve, or a hash chain too long).
/// kprobes only: nf_conntrack is a module. Early drops are not hooked: early_drop_list, which
/// returns how many entries it evicted, is inlined on every kernel vm-test boots, and
/// early_drop only says whether it evicted any; the per-netns `early_drop` counter polled from
/// /proc/net/stat/nf_conntrack is exact.
pub fn function_variants() -> Vec<Variant> {
    let alloc = Exit {
        candidates: &[NF_CONNTRACK_ALLOC],
        fexit: None,
        kprobe: "conntrack_alloc_kprobe",
        kretprobe: "conntrack_alloc_kretprobe",
    };
    let confirm = Exit {
        candidates: &[NF_CONNTRACK_CONFIRM],
        fexit: None,
        kprobe: "conntrack_confirm_kprobe",
        kretprobe: "conntrack_confirm_kretprobe",
    };
    hooks::exit_variants(&[alloc, confirm], TRACEPOINTS)
}

pub const COUNTS_MAP: &str = "CT_COUNTS";

/// Utilisation from which the report flags a table (count / max), as the usual alerts do.
pub const UTILISATION_WARN: f64 = 0.75;

/// The kernel's "table full" console line, attributed to the netns it names, or netns 0 when
/// it names none.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableFullMessage {
    pub time: String,
    pub ts_ns: u64,
    pub cpu: u32,
    pub pod: String,
    pub netns: u32,
    pub message: String,
}

/// A pod's conntrack counters grew, or its table passed the warning fill.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConntrackChange {
    pub time: String,
    pub pod: String,
    pub netns: u32,
    /// Growth since the previous poll; `count` and `max` are the table's fill now.
    #[serde(flatten)]
    pub stats: Stats,
}

/// A console record, if it is the conntrack table-full line.
pub fn decode(bytes: &[u8], names: &Names) -> Option<TableFullMessage> {
    let ev = wire::read::<netprobe_common::conntrack::ConsoleEvent>(bytes)?;
    let text = String::from_utf8_lossy(&ev.msg[..(ev.len as usize).min(ev.msg.len())]);
    let netns = table_full_netns(&text)?;
    Some(TableFullMessage {
        time: names.clock.wall(ev.header.ts_ns),
        ts_ns: ev.header.ts_ns,
        cpu: ev.header.cpu,
        pod: names.pods.name(netns),
        netns,
        message: text.trim_end().to_owned(),
    })
}

/// The netns of "nf_conntrack: table full in netns 4026532249, dropping packet"; 0 for the
/// older "nf_conntrack: table full, dropping packet", which does not say whose table it was.
fn table_full_netns(text: &str) -> Option<u32> {
    let rest = text.split("nf_conntrack: table full").nth(1)?;
    match rest.strip_prefix(" in netns ") {
        Some(n) => n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok(),
        None => rest.starts_with(", dropping packet").then_some(NODE_WIDE),
    }
}

/// The netns of messages that name none: the node's conntrack, no pod in particular.
pub const NODE_WIDE: u32 = 0;

impl crate::event::Sample for TableFullMessage {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        crate::event::Line {
            time: &self.time,
            cpu: Some(self.cpu),
            pod: &self.pod,
            what: "CONNTRACK_FULL",
            flow: String::new(),
            tail: format!("kernel: {}", self.message),
        }
    }
}

impl crate::event::Sample for ConntrackChange {
    crate::event::in_pod!();

    fn line(&self) -> crate::event::Line<'_> {
        let s = &self.stats;
        crate::event::Line {
            time: &self.time,
            cpu: None,
            pod: &self.pod,
            what: "CONNTRACK",
            flow: format!("table {}/{}", s.count, s.max),
            tail: format!(
                "+{} table-full drops, +{} insert_failed, +{} early_drop, +{} invalid",
                s.drop, s.insert_failed, s.early_drop, s.invalid
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_netns_comes_from_the_message() {
        let line = "nf_conntrack: nf_conntrack: table full in netns 4026532249, dropping packet\n";
        assert_eq!(table_full_netns(line), Some(4026532249));
        assert_eq!(table_full_netns("eth0: link up"), None);
    }

    #[test]
    fn older_kernels_name_no_netns_and_count_node_wide() {
        // 5.10, 6.1 and 6.12.
        let line = "nf_conntrack: nf_conntrack: table full, dropping packet\n";
        assert_eq!(table_full_netns(line), Some(NODE_WIDE));
        assert_eq!(table_full_netns("nf_conntrack: table full, dropping packet"), Some(0));
        assert_eq!(table_full_netns("nf_conntrack: table full in netns x"), None);
        assert_eq!(table_full_netns("nf_conntrack: table full of something else"), None);
    }
}
