//! The pod sandbox ("pause") image, made here because nothing can be pulled: a static C
//! program that waits in pause(), in a one-layer OCI image layout packed as a tar that
//! `ctr images import` reads.

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
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(&rootfs)?;
    fs::write(dir.join("pause.c"), PAUSE_C)?;
    let pause = rootfs.join("pause");
    run(Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(&pause)
        .arg(dir.join("pause.c")))?;

    let layer = dir.join("layer.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "--mtime=@0", "-cf"])
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs)
        .arg("pause"))?;
    let layer = blob(&blobs, &fs::read(&layer)?)?;
    let config = serde_json::json!({
        "architecture": arch(),
        "os": "linux",
        "config": { "Entrypoint": ["/pause"] },
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
    // containerd names the imported image after this annotation.
    entry["annotations"] = serde_json::json!({ "io.containerd.image.name": NAME });
    entry["platform"] = serde_json::json!({ "architecture": arch(), "os": "linux" });
    let index = serde_json::json!({ "schemaVersion": 2, "manifests": [entry] });
    fs::write(layout.join("index.json"), index.to_string())?;
    fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;

    let tar = dir.join("pause.tar");
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
