//! Builds netprobe-ebpf with bpf-linker and leaves the object at `$OUT_DIR/netprobe`, where
//! `src/ebpf.rs` embeds it. `NETPROBE_EBPF=stub` writes an empty object instead, so that
//! check, clippy and unit tests work without the eBPF toolchain; such a binary refuses to load.
use std::{env, fs, path::PathBuf};

use anyhow::{bail, Context as _};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=NETPROBE_EBPF");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    if env::var("NETPROBE_EBPF").as_deref() == Ok("stub") {
        println!("cargo:warning=NETPROBE_EBPF=stub: this netprobe cannot load any program");
        fs::write(out_dir.join("netprobe"), []).context("writing the stub object")?;
        return Ok(());
    }
    if which("bpf-linker").is_none() {
        bail!(
            "bpf-linker is not on PATH. Run scripts/install-deps, or build with \
             NETPROBE_EBPF=stub for check/clippy/unit tests without the eBPF toolchain."
        );
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let root = manifest.join("../netprobe-ebpf");
    let toolchain = pinned_toolchain(&root)?;
    let root = root.to_str().context("non-UTF-8 path to netprobe-ebpf")?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "netprobe-ebpf", root_dir: root, ..Default::default() }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}

fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// The channel pinned in netprobe-ebpf/rust-toolchain.toml.
fn pinned_toolchain(root: &std::path::Path) -> anyhow::Result<String> {
    let file = root.join("rust-toolchain.toml");
    println!("cargo:rerun-if-changed={}", file.display());
    let text = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("channel = \"")?.strip_suffix('"'))
        .map(str::to_owned)
        .with_context(|| format!("no channel in {}", file.display()))
}
