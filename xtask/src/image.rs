//! `cargo xtask image`: netprobe's container image as an OCI archive, built from the release
//! binary without a container daemon (none can run or pull here); the same image as
//! deploy/Containerfile.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use netprobe_tests::cri::image;

/// Builds netprobe (release) and packs it; returns the archive's path.
pub fn build(out: Option<&Path>) -> Result<PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "netprobe"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let target = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"));
    let tar = image::netprobe(&target.join("release/netprobe"), &target.join("image"))?;
    let out = out.map_or_else(|| target.join("netprobe-image.tar"), Path::to_path_buf);
    fs::rename(&tar, &out)?;
    Ok(out)
}
