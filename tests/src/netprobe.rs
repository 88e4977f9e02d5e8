//! Running the real netprobe binary the way a user would.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{bail, Context, Result};

/// target/<profile>/netprobe: beside the running binary, or one level up from a test's deps/.
pub fn bin() -> PathBuf {
    beside_me("netprobe", "cargo build -p netprobe")
}

/// `name` in the running binary's directory or the one above it.
pub fn beside_me(name: &str, build: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let found = exe.ancestors().skip(1).take(2).map(|d| d.join(name)).find(|p| p.exists());
    found.unwrap_or_else(|| panic!("{name} missing beside {}: {build}", exe.display()))
}

pub fn run(args: &[&str]) -> Result<std::process::Output> {
    Command::new(bin()).args(args).output().context("running netprobe")
}

/// A netprobe watch or report in the background, attached and ready for traffic.
pub struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
    pub stderr_seen: Vec<String>,
}

impl Running {
    /// Starts netprobe and waits until it says it is attached (a stderr line saying so).
    pub fn start(args: &[&str]) -> Result<Self> {
        Self::start_bin(&bin(), args)
    }

    /// `netprobe report --events EVENTS --format json`, running until stopped.
    pub fn report(events: &str) -> Result<Self> {
        Self::start(&["report", "--duration", "10m", "--events", events, "--format", "json"])
    }

    /// Like [`Running::start`], with a given netprobe binary.
    pub fn start_bin(bin: &std::path::Path, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting netprobe")?;
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut running = Self { child, stderr: rx, stderr_seen: Vec::new() };
        // Warnings (an interface it cannot bin, say) may come before the line saying it is
        // attached; they are kept with the rest.
        let attached = |line: &str| {
            ["watching", "counting", "binning", "serving"]
                .iter()
                .any(|w| line.starts_with(&format!("netprobe: {w}")))
        };
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match running.stderr.recv_timeout(left) {
                Ok(line) => {
                    let done = attached(&line);
                    running.stderr_seen.push(line);
                    if done {
                        return Ok(running);
                    }
                }
                Err(_) => break,
            }
        }
        let _ = running.child.kill();
        bail!("netprobe did not attach: {:?}", running.stderr_seen)
    }

    /// After exit: every stderr line up to the pipe's end (the reader thread stops there), so
    /// no last line is missed; at most 5 s.
    fn drain_stderr(&mut self) {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(_) => break,
            }
        }
    }

    /// Every stderr line so far.
    pub fn stderr_now(&mut self) -> Vec<String> {
        self.stderr_seen.extend(self.stderr.try_iter());
        self.stderr_seen.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and collects stdout once it exits; fails if it takes over 10 s.
    pub fn stop_with(mut self, signal: i32) -> Result<(std::process::ExitStatus, String)> {
        unsafe { libc::kill(self.child.id() as i32, signal) };
        let mut stdout = self.child.stdout.take().expect("piped");
        let reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                self.drain_stderr();
                return Ok((status, reader.join().expect("reader")));
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        bail!("netprobe did not exit within 10 s of signal {signal}")
    }

    /// Waits for it to end by itself (--duration); fails after 60 s.
    pub fn wait(mut self) -> Result<String> {
        let mut stdout = self.child.stdout.take().expect("piped");
        let reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("netprobe exited with {status}");
                }
                return Ok(reader.join().expect("reader"));
            }
            thread::sleep(Duration::from_millis(100));
        }
        bail!("netprobe did not finish within 60 s")
    }

    /// Waits for it to end by itself; its exit status and every stderr line. Fails after 60 s.
    pub fn exited(mut self) -> Result<(std::process::ExitStatus, Vec<String>)> {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait()? {
                self.drain_stderr();
                return Ok((status, std::mem::take(&mut self.stderr_seen)));
            }
            thread::sleep(Duration::from_millis(100));
        }
        bail!("netprobe did not finish within 60 s")
    }

    /// Ctrl-C, expecting a clean exit.
    pub fn stop(self) -> Result<String> {
        let (status, out) = self.stop_with(libc::SIGINT)?;
        if !status.success() {
            bail!("netprobe exited with {status}");
        }
        Ok(out)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
