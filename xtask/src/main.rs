//! Developer tasks: `cargo xtask demo`, `cargo xtask lab up|down|pod`, `cargo xtask vm-test`.

mod agent_cost;
mod bench;
mod demo;
mod image;
mod incident;
mod pod;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};
use netprobe_tests::{
    cri,
    lab::{self, Lab},
};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build netprobe, bring up a throwaway lab, provoke real drops, watch and report, tear
    /// the lab down. Needs root.
    Demo,
    /// Measure what netprobe costs the traffic it watches, against no agent and against
    /// bpftrace on the same hooks; writes docs/benchmarks.md. Needs root and bpftrace.
    Bench(bench::Options),
    /// Boot Debian's cloud kernels under QEMU and check netprobe's counts against each guest
    /// kernel's own counters; writes docs/kernels.md. Needs root and scripts/install-deps.
    VmTest {
        /// 5.10, 6.1, 6.12 (both builds), 6.12+deb12, 6.12+deb13 or all.
        #[arg(long, default_value = "all")]
        kernel: String,
    },
    /// Measure what `netprobe agent` costs: CPU at idle and per 100k events/s, memory at
    /// start and over a soak, a scrape with 100 pods; writes them into docs/agent.md. Needs root.
    AgentCost {
        /// How long the soak runs, e.g. 30m or 90s.
        #[arg(long, default_value = "30m", value_parser = minutes_or_seconds)]
        soak: std::time::Duration,
        /// The agent's `--retain`; by default a third of the soak, at least a minute, so that
        /// the soak shows memory once the window is full.
        #[arg(long, value_parser = minutes_or_seconds)]
        retain: Option<std::time::Duration>,
    },
    /// Build netprobe's container image as an OCI archive (target/netprobe-image.tar), which
    /// `ctr -n k8s.io images import` takes; no container daemon needed.
    Image {
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// The lab: pods as network namespaces on a bridge, as a CNI would make them.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Create pod-a, pod-b and pod-c (10.99.0.10-12) on bridge np-br0 and leave them up.
    Up,
    /// Remove everything a lab created and restore every sysctl it changed.
    Down,
    /// Reproduce an incident from shared/incidents/ under `netprobe report`, then tear the
    /// lab down. Without NAME, list them.
    Incident { name: Option<String> },
    /// Kubernetes pods through CRI, on a real containerd that the first `pod add` starts
    /// and `lab down` stops (it holds the lab lock meanwhile).
    Pod {
        #[command(subcommand)]
        action: PodAction,
    },
}

#[derive(Subcommand)]
enum PodAction {
    /// Run a pod sandbox; prints `netns=PATH ip=ADDR` (`netns=host ip=none` with
    /// --host-network).
    Add {
        /// NAMESPACE/NAME
        pod: String,
        /// A pod label, k=v; repeatable.
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        /// Share the node's network namespace.
        #[arg(long)]
        host_network: bool,
    },
    /// Stop and remove a pod sandbox.
    Rm {
        /// NAMESPACE/NAME
        pod: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Demo => demo::run(),
        Task::Bench(options) => bench::run(options),
        Task::VmTest { kernel } => vm::run(&kernel),
        Task::AgentCost { soak, retain } => agent_cost::run(soak, retain),
        Task::Image { output } => {
            let tar = image::build(output.as_deref())?;
            let name = netprobe_tests::cri::image::NETPROBE;
            println!("{name} (import: ctr -n k8s.io images import {})", tar.display());
            Ok(())
        }
        Task::Lab { action: LabAction::Up } => {
            let lab = Lab::up(&demo::PODS)?;
            for pod in lab.pods() {
                println!("{pod}: {} (ip netns exec {pod} ...)", lab.ip(pod));
            }
            println!("remove with: cargo xtask lab down");
            // Leave it up; what it made is recorded for `lab down`.
            std::mem::forget(lab);
            Ok(())
        }
        Task::Lab { action: LabAction::Down } => {
            // Both, even when the first fails.
            let lab = lab::cleanup_leftovers();
            cri::cleanup().and(lab)
        }
        Task::Lab { action: LabAction::Pod { action } } => pod::run(action),
        Task::Lab { action: LabAction::Incident { name } } => incident::run(name.as_deref()),
    }
}

/// `30m` or `90s`.
fn minutes_or_seconds(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n.parse().map_err(|_| format!("`{s}`: expected e.g. 30m or 90s"))?;
    match unit {
        "m" => Ok(std::time::Duration::from_secs(n * 60)),
        "s" => Ok(std::time::Duration::from_secs(n)),
        _ => Err(format!("`{s}`: expected e.g. 30m or 90s")),
    }
}
