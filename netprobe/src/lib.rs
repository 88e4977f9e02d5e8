//! netprobe: kernel drop reasons, per pod, from eBPF. The binary is `main.rs`; everything
//! else lives here, so that commands, tests and tools share one crate.
//!
//! Data flows one way (docs/architecture.md): kernel hooks (`families/*`, attached by
//! `agent`) -> samples and exact counters -> `frames` (once a second) -> the report builder,
//! a recording file, or both.

mod agent;
mod btf;
mod cgroup;
pub mod cli;
mod clock;
mod commands;
pub mod cri;
mod daemon;
mod duration;
mod ebpf;
mod ena;
mod errno;
mod error;
/// Public for the test against a real interface (tests/tests/ena.rs).
pub mod ethtool;
mod event;
mod families;
mod family;
mod flow;
mod frames;
mod health;
mod hooks;
mod json;
mod kallsyms;
mod kconfig;
mod kstat;
mod layout;
mod links;
mod names;
mod netlink;
mod nsenter;
mod pods;
mod poll;
mod privileges;
mod reasons;
mod record;
mod report;
mod run;
mod sockdiag;
mod ticker;
mod tiers;
mod tracefs;
mod wire;

use crate::cli::{Cli, Command};
// What `cargo xtask bench` needs to hang empty programs on netprobe's hooks.
pub use crate::{family::Family, hooks::Point, tiers::Tier};

/// Runs one command line to its end on a single-threaded runtime.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Before 5.11 BPF maps are charged to RLIMIT_MEMLOCK, whose default is far too small.
    if let Err(e) = privileges::raise_memlock() {
        eprintln!("netprobe: warning: {e}");
    }
    let cri = cli.cri_socket.or_else(cri::default_socket);
    runtime.block_on(async {
        match cli.command {
            Command::Doctor => commands::doctor::doctor(cri),
            Command::Watch(args) => commands::watch::watch(args, cri).await,
            Command::Report(args) => commands::report::report(args, cri).await,
            Command::Record(args) => commands::record::record(args, cri).await,
            Command::Agent(args) => commands::agent::agent(args, cri).await,
            Command::Bursts(args) => commands::bursts::bursts(args, cri).await,
        }
    })
}
