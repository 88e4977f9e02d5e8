//! Ephemeral-port exhaustion and bind conflicts (incidents 03, 04): connect() and bind()
//! failing with EADDRNOTAVAIL or EADDRINUSE, per pod and process, with the pod's port range
//! and its TIME_WAIT sockets to the same destination.

pub mod context;
pub mod decode;
pub mod findings;

pub use decode::PortSample;

use crate::hooks::Tracepoint;

pub const TRACEPOINTS: &[&Tracepoint] = &[
    &Tracepoint {
        category: "syscalls",
        name: "sys_enter_connect",
        btf_args: &[],
        fields: &["uservaddr", "addrlen"],
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
        fields: &["umyaddr", "addrlen"],
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

pub fn op_name(op: u32) -> &'static str {
    match op {
        netprobe_common::ports::op::CONNECT => "connect",
        netprobe_common::ports::op::BIND => "bind",
        _ => "unknown",
    }
}

pub fn errno_name(errno: u32) -> String {
    match errno as i32 {
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL".into(),
        libc::EADDRINUSE => "EADDRINUSE".into(),
        n => n.to_string(),
    }
}
