//! The netprobe binary: parse the command line, run it, and exit 1 with the error.

use clap::Parser;

fn main() {
    if let Err(e) = netprobe::run(netprobe::cli::Cli::parse()) {
        eprintln!("netprobe: error: {e:#}");
        std::process::exit(1);
    }
}
