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

use crate::hooks::Tracepoint;

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
    match errno as i32 {
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL".into(),
        libc::EADDRINUSE => "EADDRINUSE".into(),
        n => n.to_string(),
    }
}
