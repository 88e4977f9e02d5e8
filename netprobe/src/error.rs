//! Errors a user can meet, each saying what to do next.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "missing capabilities: {}. netprobe loads BPF programs and reads kernel memory (and \
         tracefs, for the classic tracepoints); run it as root, or grant them: setcap \
         cap_bpf,cap_perfmon{},cap_sys_resource+ep $(which netprobe)",
        .0.join(", "),
        beyond_bpf(.0)
    )]
    Capabilities(Vec<&'static str>),

    #[error(
        "this kernel has no BTF at /sys/kernel/btf/vmlinux. netprobe reads struct layouts and \
         drop-reason names from it; use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every \
         mainstream distribution kernel since 2021 is)"
    )]
    NoBtf,

    #[error("reading kernel BTF: {0}")]
    Btf(String),

    #[error("this kernel's layout is not what netprobe knows how to read: {0}")]
    Layout(String),

    #[error("this netprobe's BPF object has no {0}: the binary was built from mismatched sources")]
    Object(String),

    /// A hook tier that does not work here; the message says why.
    #[error("{0}")]
    Tier(String),

    #[error("no pod matches {selection}. The pods here: {}", known.join(", "))]
    NoPodSelected { selection: String, known: Vec<String> },

    #[error("no pod named `{name}`. Known pods: {}", known.join(", "))]
    UnknownPod { name: String, known: Vec<String> },

    #[error("no interface `{name}` in {scope}; there are: {}", known.join(", "))]
    UnknownInterface { name: String, scope: String, known: Vec<String> },

    #[error(
        "this netprobe was built with NETPROBE_EBPF=stub and has no BPF programs; rebuild it \
         after scripts/install-deps"
    )]
    StubObject,

    #[error("no tier of hook family `{family}` works here: {}", tried.join("; "))]
    NoTier { family: &'static str, tried: Vec<String> },

    #[error("no hook family asked for can run here: {}", .0.join("; "))]
    NoFamily(Vec<String>),

    #[error(
        "hook family `{family}` has no program at the {tier} tier (it has: {}); leave it out \
         with --events, or choose another --tier",
        offered.join(", ")
    )]
    TierNotOffered { family: &'static str, tier: crate::tiers::Tier, offered: Vec<String> },

    #[error("tracefs: {0}")]
    Tracefs(String),

    #[error(transparent)]
    Ebpf(#[from] aya::EbpfError),

    #[error(transparent)]
    Map(#[from] aya::maps::MapError),

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The missing capabilities other than the two every run needs, as setcap lists them.
fn beyond_bpf(missing: &[&str]) -> String {
    let usual = ["CAP_BPF", "CAP_PERFMON"];
    missing
        .iter()
        .filter(|c| !usual.contains(c))
        .map(|c| format!(",{}", c.to_lowercase()))
        .collect()
}
