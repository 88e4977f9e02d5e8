//! One guest boot under QEMU's software emulation (KVM does not work on these machines). The
//! QEMU process belongs to a guard that kills it when dropped: on timeout, error or panic.

use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

/// How a boot ended.
pub enum Ended {
    /// The guest's init wrote this code to isa-debug-exit.
    Exit(i32),
    /// QEMU exited without it: the kernel panicked (panic=-1 resets, -no-reboot exits).
    Other(std::process::ExitStatus),
    TimedOut,
}

struct Guard {
    child: Child,
    tmp: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

/// Boots `vmlinuz` with `initrd`; the serial console (ttyS0) goes to `log`, the guest's second
/// serial port (ttyS1) to `results`.
pub fn boot(
    vmlinuz: &Path,
    initrd: &Path,
    log: &Path,
    results: &Path,
    timeout: Duration,
) -> Result<Ended> {
    let tmp = log.with_extension("tmp");
    fs::create_dir_all(&tmp)?;
    let console = fs::File::create(log)?;
    let mut qemu = Command::new("qemu-system-x86_64");
    // Killed with xtask even when xtask itself is killed and no guard runs.
    unsafe {
        qemu.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    };
    let child = qemu
        // -cx16: QEMU 7.2's emulation of cmpxchg16b corrupts flags and crashes 6.12 kernels.
        .args(["-accel", "tcg", "-cpu", "max,-cx16", "-m", "1024", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-serial", "mon:stdio", "-serial"])
        .arg(format!("file:{}", results.display()))
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1"])
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        .spawn()
        .context("starting qemu-system-x86_64 (scripts/install-deps installs it)")?;
    let mut guard = Guard { child, tmp };
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = guard.child.try_wait()? {
            // isa-debug-exit makes QEMU exit with (code << 1) | 1.
            return Ok(match status.code() {
                Some(c) if c % 2 == 1 => Ended::Exit(c >> 1),
                _ => Ended::Other(status),
            });
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(Ended::TimedOut)
}
