//! Ephemeral-port exhaustion and bind conflicts (incidents 03, 04): connect() and bind()
//! failing with EADDRNOTAVAIL or EADDRINUSE, per pod and process, with the pod's port range
//! and its TIME_WAIT sockets to the same destination.

pub mod context;
pub mod decode;
pub mod findings;
pub mod metrics;
pub mod report;
pub mod snapshot;
pub mod timeline;

pub use decode::PortSample;

use crate::{
    btf::ArgKind,
    hooks::{self, Exit, Function, Tracepoint, Variant},
};

pub const TRACEPOINTS: &[&Tracepoint] = &[
    &Tracepoint {
        category: "syscalls",
        name: "sys_enter_connect",
        btf_args: &[],
        fields: &["uservaddr", "addrlen", "fd"],
        programs: [None, None, Some("ports_enter_connect")],
        slot: |l| &mut l.sys_enter_connect,
    },
    &Tracepoint {
        category: "syscalls",
        name: "sys_exit_connect",
        btf_args: &[],
        fields: &["ret"],
        programs: [None, None, Some("ports_exit_connect")],
        slot: |l| &mut l.sys_exit_connect,
    },
    BIND[0],
    BIND[1],
];

/// The bind() syscall, which the function tiers keep: a bind fails in more places than the
/// conflict check.
const BIND: [&Tracepoint; 2] = [
    &Tracepoint {
        category: "syscalls",
        name: "sys_enter_bind",
        btf_args: &[],
        fields: &["umyaddr", "addrlen", "fd"],
        programs: [None, None, Some("ports_enter_bind")],
        slot: |l| &mut l.sys_enter_bind,
    },
    &Tracepoint {
        category: "syscalls",
        name: "sys_exit_bind",
        btf_args: &[],
        fields: &["ret"],
        programs: [None, None, Some("ports_exit_bind")],
        slot: |l| &mut l.sys_exit_bind,
    },
];

const INET_HASH_CONNECT: &str = "__inet_hash_connect";
const INET_CSK_BIND_CONFLICT: &str = "inet_csk_bind_conflict";

pub const FUNCTIONS: &[&Function] = &[
    &Function {
        name: INET_HASH_CONNECT,
        module: None,
        args: &[ArgKind::StructPtr("sock")],
        slot: |l| &mut l.inet_hash_connect_fn,
    },
    // (sk, tb, relax, reuseport_ok) on 5.10; 6.1 added tb2 (and 6.1 to 6.x an l3mdev).
    &Function {
        name: INET_CSK_BIND_CONFLICT,
        module: None,
        args: &[ArgKind::Named("tb"), ArgKind::Optional(&ArgKind::Named("tb2"))],
        slot: |l| &mut l.bind_conflict_fn,
    },
];

/// connect()'s EADDRNOTAVAIL where the kernel finds it, at __inet_hash_connect's return (IPv4
/// and IPv6 both pick their port there), instead of at every connect() syscall's entry and
/// exit. bind() stays at its syscall tracepoints, since it fails in more places than the
/// conflict check; inet_csk_bind_conflict's return adds who holds the port it conflicted on.
pub fn function_variants() -> Vec<Variant> {
    let exits = [
        Exit {
            candidates: &[INET_HASH_CONNECT],
            fexit: Some("ports_hash_connect_fexit"),
            kprobe: "ports_hash_connect_kprobe",
            kretprobe: "ports_hash_connect_kretprobe",
        },
        Exit {
            candidates: &[INET_CSK_BIND_CONFLICT],
            fexit: Some("ports_bind_conflict_fexit"),
            kprobe: "ports_bind_conflict_kprobe",
            kretprobe: "ports_bind_conflict_kretprobe",
        },
    ];
    hooks::exit_variants(&exits, &BIND)
}

pub const COUNTS_MAP: &str = "PORT_COUNTS";

/// The call that failed, in the names JSON and recordings use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PortOp {
    Connect,
    Bind,
    /// A call this build does not know.
    #[serde(other)]
    Unknown,
}

impl PortOp {
    pub fn from_wire(op: u32) -> Self {
        match op {
            netprobe_common::ports::op::CONNECT => Self::Connect,
            netprobe_common::ports::op::BIND => Self::Bind,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Bind => "bind",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for PortOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn errno_name(errno: u32) -> String {
    crate::errno::name(errno as i32)
}
