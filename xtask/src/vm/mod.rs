//! `cargo xtask vm-test [--kernel 5.10|6.1|6.12|all]`: netprobe on Debian's cloud kernels,
//! each booted under QEMU with an initramfs that runs lab scenarios in the guest and compares
//! netprobe's counts with the guest kernel's own counters. Writes docs/kernels.md.

mod docs;
mod initramfs;
mod kernels;
mod qemu;
mod results;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use qemu::Ended;

/// A guest runs doctor and 22 scenario runs in about 90 s on a quiet machine; TCG on a busy
/// one is three times slower (6.12 took 282 s), and a hung guest must not hang the run.
const GUEST_TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(which: &str) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("vm-test runs apt-get download and dpkg-deb: run it as root");
    }
    let kernels = kernels::select(which)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let vm = root.join("target/vm");
    fs::create_dir_all(&vm)?;

    let started = Instant::now();
    let bins = build(&root)?;
    let extracted = kernels::fetch(&vm, &kernels)?;
    println!(
        "vm-test: netprobe built and kernels ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut guests = Vec::new();
    for (kernel, x) in kernels.iter().zip(&extracted) {
        let t = Instant::now();
        let initrd = vm.join(format!("initrd-{}.cpio", kernel.name));
        initramfs::build(x, &bins, &vm, &initrd)
            .with_context(|| format!("the initramfs for {}", x.package))?;
        let log = vm.join(format!("console-{}.log", kernel.name));
        println!("vm-test: {} ({}): booting, console in {}", kernel.name, x.package, log.display());
        let out = vm.join(format!("results-{}.log", kernel.name));
        let ended = qemu::boot(&x.vmlinuz, &initrd, &log, &out, GUEST_TIMEOUT)?;
        let wall = t.elapsed().as_secs_f64();
        let guest = match ended {
            Ended::Exit(0) => results::parse(&String::from_utf8_lossy(&fs::read(&out)?))?,
            Ended::Exit(c) => {
                bail!("{}: the guest exited with code {c}; see {}", kernel.name, log.display())
            }
            Ended::Other(s) => bail!(
                "{}: QEMU ended with {s} (a kernel panic?); see {}",
                kernel.name,
                log.display()
            ),
            Ended::TimedOut => bail!(
                "{}: no end within {GUEST_TIMEOUT:?}, QEMU killed; see {}",
                kernel.name,
                log.display()
            ),
        };
        println!(
            "vm-test: {} {}: runner started at {:.1} s, done at {}, {wall:.1} s wall",
            kernel.name,
            guest.release,
            guest.boot_s,
            guest.done_s.map_or("-".into(), |s| format!("{s:.1} s")),
        );
        for o in &guest.outcomes {
            println!(
                "  {:<5} {:<18} {:<10} {:<24} netprobe {:>4} kernel {:>4}  {}",
                if o.pass {
                    "PASS"
                } else if o.infeasible {
                    "N/A"
                } else {
                    "FAIL"
                },
                o.scenario,
                o.family,
                o.tier,
                o.netprobe,
                o.kernel,
                o.note
            );
        }
        guests.push(docs::Run {
            kernel: kernel.name,
            package: x.package.clone(),
            wall_s: wall,
            guest,
        });
    }
    docs::write(&root.join("docs/kernels.md"), &guests)?;
    let failed: Vec<String> = guests
        .iter()
        .flat_map(|g| {
            g.guest
                .outcomes
                .iter()
                .filter(|o| !o.pass && !o.infeasible)
                .map(|o| format!("{} {} ({})", g.kernel, o.scenario, o.tier))
        })
        .collect();
    println!("vm-test: docs/kernels.md written; {:.1} s in all", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

/// netprobe and labtool, release builds: under emulation a debug netprobe takes seconds to
/// read the kernel's BTF at every start.
fn build(root: &Path) -> Result<Vec<PathBuf>> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "netprobe", "-p", "netprobe-tests"])
        .args(["--bin", "netprobe", "--bin", "labtool"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    Ok(["netprobe", "labtool"].iter().map(|b| root.join("target/release").join(b)).collect())
}
