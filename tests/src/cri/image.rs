//! Images made here, because nothing can be pulled: one-layer OCI image layouts packed as
//! tars that `ctr images import` reads. The pod sandbox ("pause") image is a static C program
//! that waits in pause(); `cargo xtask image` packs netprobe's the same way.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// The name the CRI plugin's `sandbox_image` refers to.
pub const NAME: &str = "netprobe.local/pause:1";

// Exits on SIGTERM/SIGINT: as PID 1 of its PID namespace, a signal without a handler is
// ignored, and a stop would have to wait for SIGKILL.
const PAUSE_C: &str = r#"#include <signal.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
int main(void) {
  signal(SIGTERM, quit);
  signal(SIGINT, quit);
  for (;;) pause();
}
"#;

/// Builds the image under `dir` and returns the path of its tar.
pub fn build(dir: &Path) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&rootfs)?;
    fs::write(dir.join("pause.c"), PAUSE_C)?;
    run(Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(rootfs.join("pause"))
        .arg(dir.join("pause.c")))?;
    archive(dir, &rootfs, &["/pause"], NAME)
}

/// What netprobe's image is called, as deploy/kubernetes refers to it.
pub const NETPROBE: &str = concat!("docker.io/library/netprobe:", env!("CARGO_PKG_VERSION"));

/// netprobe's image (deploy/Containerfile's, without a daemon): `bin` and the C runtime it
/// links, under `dir`; returns the archive.
pub fn netprobe(bin: &Path, dir: &Path) -> Result<PathBuf> {
    let _ = fs::remove_dir_all(dir);
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("usr/bin"))?;
    // Mount points the DaemonSet's read-only root needs (tracefs is mounted over this one).
    fs::create_dir_all(rootfs.join("sys/kernel/tracing"))?;
    for d in ["proc", "run/netns", "run/containerd", "tmp", "dev"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    // Without debug info: a node pulls the image, not the symbols.
    run(Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(rootfs.join("usr/bin/netprobe"))
        .arg(bin))?;
    for lib in libraries(bin)? {
        let inside = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        fs::create_dir_all(inside.parent().expect("a directory"))?;
        fs::copy(&lib, &inside).with_context(|| format!("copying {}", lib.display()))?;
    }
    archive(dir, &rootfs, &["/usr/bin/netprobe"], NETPROBE)
}

/// The shared libraries `bin` loads, the dynamic loader included, by ldd.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("running ldd")?;
    if !out.status.success() {
        bail!("ldd {}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    }
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`.
    let text = String::from_utf8_lossy(&out.stdout);
    let paths = text.lines().filter_map(|l| {
        let path = l.split("=>").last()?.split_whitespace().next()?;
        path.starts_with('/').then(|| PathBuf::from(path))
    });
    Ok(paths.collect())
}

/// A one-layer OCI image of `rootfs` whose entrypoint is `entrypoint`, as an OCI layout tar
/// under `dir` that `ctr images import` takes and names `name`.
pub fn archive(dir: &Path, rootfs: &Path, entrypoint: &[&str], name: &str) -> Result<PathBuf> {
    let layout = dir.join("layout");
    let _ = fs::remove_dir_all(&layout);
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let layer = dir.join("layer.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "--mtime=@0", "--sort=name", "-cf"])
        .arg(&layer)
        .arg("-C")
        .arg(rootfs)
        .arg("."))?;
    let layer = blob(&blobs, &fs::read(&layer)?)?;
    let config = serde_json::json!({
        "architecture": arch(),
        "os": "linux",
        "config": { "Entrypoint": entrypoint },
        "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
    });
    let config = blob(&blobs, config.to_string().as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.descriptor("application/vnd.oci.image.config.v1+json"),
        "layers": [layer.descriptor("application/vnd.oci.image.layer.v1.tar")],
    });
    let manifest = blob(&blobs, manifest.to_string().as_bytes())?;
    let mut entry = manifest.descriptor("application/vnd.oci.image.manifest.v1+json");
    // containerd names the imported image after this annotation; OCI tools after the other.
    entry["annotations"] = serde_json::json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name,
    });
    entry["platform"] = serde_json::json!({ "architecture": arch(), "os": "linux" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] });
    fs::write(layout.join("index.json"), index.to_string())?;
    fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;

    let tar = dir.join("image.tar");
    run(Command::new("tar").arg("-cf").arg(&tar).arg("-C").arg(&layout).args([
        "oci-layout",
        "index.json",
        "blobs",
    ]))?;
    Ok(tar)
}

struct Blob {
    digest: String,
    size: usize,
}

impl Blob {
    fn descriptor(&self, media_type: &str) -> serde_json::Value {
        serde_json::json!({ "mediaType": media_type, "digest": self.digest, "size": self.size })
    }
}

/// Stores content under its sha256 digest.
fn blob(blobs: &Path, content: &[u8]) -> Result<Blob> {
    let hex = sha256(content)?;
    fs::write(blobs.join(&hex), content)?;
    Ok(Blob { digest: format!("sha256:{hex}"), size: content.len() })
}

/// The hex sha256 of `content`, by coreutils' sha256sum.
pub(super) fn sha256(content: &[u8]) -> Result<String> {
    use std::{io::Write, process::Stdio};
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    child.stdin.take().expect("piped").write_all(content)?;
    let out = child.wait_with_output()?;
    let hex =
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
    if !out.status.success() || hex.len() != 64 {
        bail!("sha256sum failed");
    }
    Ok(hex)
}

/// The OCI name of this machine's architecture.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(super) fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
