//! The netprobe binary: parse the command line, run it, and exit 1 with the error.

use clap::Parser;

/// The agent's retained window rises and falls with the traffic; glibc's malloc kept the frames
/// that left it as resident memory (its high-water mark, docs/agent.md), jemalloc returns them.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    if let Err(e) = netprobe::run(netprobe::cli::Cli::parse()) {
        eprintln!("netprobe: error: {e:#}");
        std::process::exit(1);
    }
}
