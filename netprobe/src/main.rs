//! netprobe: kernel drop reasons, per pod, from eBPF.

mod agent;
mod btf;
mod bursts;
mod cli;
mod clock;
mod conntrack;
mod doctor;
mod drops;
mod duration;
mod ebpf;
mod error;
mod event;
mod flow;
mod hooks;
mod kallsyms;
mod kstat;
mod layout;
mod links;
mod listen;
mod names;
mod netlink;
mod nsenter;
mod pods;
mod poll;
mod ports;
mod privileges;
mod reasons;
mod record;
mod report;
mod run;
mod sockdiag;
mod softnet;
mod tcp;
mod tiers;
mod tracefs;
mod watch;
mod wire;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    if let Err(e) = privileges::raise_memlock() {
        eprintln!("netprobe: warning: {e}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Doctor => doctor::doctor(),
            Command::Watch(args) => watch::watch(args).await,
            Command::Report(args) => report::report(args).await,
            Command::Record(args) => report::record(args).await,
            Command::Bursts(args) => bursts::command::bursts(args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("netprobe: error: {e:#}");
        std::process::exit(1);
    }
}
