//! The guest's initramfs, an uncompressed cpio (newc) archive: static busybox, iproute2's `ip`
//! and nft with their shared libraries, netprobe and labtool, the kernel's modules for the
//! scenarios, and the init and runner scripts.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use super::kernels::Extracted;

/// Modules the scenarios need; their dependencies come from modules.dep. A module built into
/// a kernel is skipped on it.
const MODULES: &[&str] = &[
    "veth",
    "nf_conntrack",
    "nf_tables",
    "nft_ct",
    "nft_numgen",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
];

/// Modules that later kernels fold into another: nft_counter is its own module on 5.10 and
/// part of nf_tables.ko later. The guest has no modprobe to load them on demand.
const MODULES_IF_SEPARATE: &[&str] = &["nft_counter"];

/// Host programs copied with their libraries: busybox's `ip` cannot do netns or veth.
const HOST_TOOLS: &[&str] = &["ip", "nft"];

const INIT: &str = include_str!("guest/init.sh");
const RUNNER: &str = include_str!("guest/runner.sh");

/// Writes the initramfs for `kernel` to `out`; `bins` go to /usr/local/bin, without debug info.
pub fn build(kernel: &Extracted, bins: &[PathBuf], scratch: &Path, out: &Path) -> Result<()> {
    let mut cpio = Cpio::create(out)?;
    cpio.dir("dev")?;
    // The kernel opens /dev/console for init before anything mounts devtmpfs.
    cpio.node("dev/console", 0o020600, (5, 1), &[])?;
    for d in ["proc", "sys", "tmp", "run", "etc"] {
        cpio.dir(d)?;
    }
    let busybox = fs::read("/bin/busybox").context("/bin/busybox (Debian busybox-static)")?;
    cpio.file("bin/busybox", 0o755, &busybox)?;
    cpio.file("init", 0o755, INIT.as_bytes())?;
    cpio.file("runner.sh", 0o755, RUNNER.as_bytes())?;

    let mut libs = BTreeSet::new();
    for tool in HOST_TOOLS {
        let path = which(tool)?;
        libs.extend(shared_libs(&path)?);
        cpio.file(&format!("usr/local/bin/{tool}"), 0o755, &fs::read(&path)?)?;
    }
    for bin in bins {
        libs.extend(shared_libs(bin)?);
        let name = bin.file_name().unwrap().to_str().unwrap();
        let stripped = scratch.join(name);
        run(Command::new("objcopy").arg("--strip-debug").arg(bin).arg(&stripped))?;
        cpio.file(&format!("usr/local/bin/{name}"), 0o755, &fs::read(&stripped)?)?;
    }
    for lib in libs {
        let rel = lib.strip_prefix("/").unwrap().to_str().unwrap().to_string();
        cpio.file(&rel, 0o755, &fs::read(&lib)?)?;
    }

    let mut list = String::new();
    for module in modules(&kernel.modules)? {
        let src = kernel.modules.join(&module);
        let (ko, data) = match module.rsplit_once('.') {
            Some((ko, "xz")) => (ko, output(Command::new("xz").arg("-dc").arg(&src))?),
            Some((ko, "zst")) => (ko, output(Command::new("zstd").arg("-dcq").arg(&src))?),
            _ => (module.as_str(), fs::read(&src)?),
        };
        cpio.file(&format!("lib/modules/{ko}"), 0o644, &data)?;
        list += &format!("/lib/modules/{ko}\n");
    }
    cpio.file("modules.list", 0o644, list.as_bytes())?;
    cpio.finish()
}

/// Paths (relative to the modules directory) of MODULES and their dependencies, each after
/// what it depends on: the order insmod needs.
fn modules(dir: &Path) -> Result<Vec<String>> {
    let dep = fs::read_to_string(dir.join("modules.dep")).context("modules.dep")?;
    let builtin = fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let name = |path: &str| {
        let file = path.rsplit('/').next().unwrap_or(path);
        file.split(".ko").next().unwrap_or(file).replace('-', "_")
    };
    let deps: BTreeMap<String, (String, Vec<String>)> = dep
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| (name(m), (m.to_string(), d.split_whitespace().map(name).collect())))
        .collect();
    let builtin: BTreeSet<String> = builtin.lines().map(name).collect();
    fn visit(
        m: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(m.to_string()) {
            return;
        }
        let (path, needs) = &deps[m];
        for d in needs {
            visit(d, deps, seen, order);
        }
        order.push(path.clone());
    }
    let (mut seen, mut order) = (BTreeSet::new(), Vec::new());
    for m in MODULES.iter().chain(MODULES_IF_SEPARATE) {
        if deps.contains_key(*m) {
            visit(m, &deps, &mut seen, &mut order);
        } else if !builtin.contains(*m) && MODULES.contains(m) {
            bail!("module {m} is neither in modules.dep nor built in ({})", dir.display());
        }
    }
    Ok(order)
}

fn which(tool: &str) -> Result<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
        .with_context(|| format!("{tool} not found (scripts/install-deps installs it)"))
}

/// The libraries and loader `ldd` resolves for `bin`, at their absolute paths.
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = String::from_utf8(output(Command::new("ldd").arg(bin))?)?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let l = l.split(" (0x").next()?.trim();
            let path = l.rsplit_once("=> ").map_or(l, |(_, p)| p);
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(drop)
}

/// A cpio "newc" writer: the format the kernel unpacks an initramfs from.
struct Cpio {
    out: BufWriter<fs::File>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn create(path: &Path) -> Result<Self> {
        let out = BufWriter::new(fs::File::create(path)?);
        Ok(Self { out, ino: 0, dirs: BTreeSet::new() })
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        if self.dirs.contains(name) {
            return Ok(());
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.dirs.insert(name.to_string());
        self.node(name, 0o040755, (0, 0), &[])
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> Result<()> {
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.node(name, 0o100000 | perm, (0, 0), data)
    }

    fn node(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> Result<()> {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::from("070701");
        for f in fields {
            header += &format!("{f:08x}");
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(110 + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())
    }

    fn pad(&mut self, len: usize) -> Result<()> {
        self.out.write_all(&[0; 3][..(4 - len % 4) % 4])?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.node("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_come_after_their_dependencies_and_built_ins_are_skipped() {
        let dir = std::env::temp_dir().join(format!("vm-modules-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("modules.dep"),
            "kernel/drivers/net/veth.ko.xz:\n\
             lib/libcrc32c.ko.xz:\n\
             nf/nfnetlink.ko.xz:\n\
             ipv4/nf_defrag_ipv4.ko.xz:\n\
             nf/nf_conntrack.ko.xz: ipv4/nf_defrag_ipv4.ko.xz lib/libcrc32c.ko.xz\n\
             nf/nf_tables.ko.xz: nf/nfnetlink.ko.xz lib/libcrc32c.ko.xz\n\
             nf/nft_ct.ko.xz: nf/nf_tables.ko.xz nf/nf_conntrack.ko.xz\n\
             nf/nf_nat.ko.xz: nf/nf_conntrack.ko.xz\n\
             nf/nft_chain_nat.ko.xz: nf/nf_tables.ko.xz nf/nf_nat.ko.xz\n\
             nf/nft_nat.ko.xz: nf/nf_tables.ko.xz nf/nf_nat.ko.xz\n\
             nf/nft_masq.ko.xz: nf/nf_tables.ko.xz nf/nf_nat.ko.xz\n",
        )
        .unwrap();
        fs::write(dir.join("modules.builtin"), "kernel/net/netfilter/nft_numgen.ko\n").unwrap();
        let order = modules(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let at = |m: &str| order.iter().position(|p| p.contains(&format!("/{m}.ko"))).unwrap();
        assert_eq!(order.len(), 11, "{order:?}");
        assert!(at("nf_defrag_ipv4") < at("nf_conntrack") && at("libcrc32c") < at("nf_conntrack"));
        assert!(at("nf_conntrack") < at("nft_ct") && at("nf_tables") < at("nft_ct"));
        assert!(at("nfnetlink") < at("nf_tables"));
        assert!(at("nf_nat") < at("nft_chain_nat") && at("nf_nat") < at("nft_masq"));
    }

    #[test]
    fn cpio_entries_are_newc_and_four_byte_aligned() {
        let path = std::env::temp_dir().join(format!("vm-cpio-{}", std::process::id()));
        let mut cpio = Cpio::create(&path).unwrap();
        cpio.file("usr/local/bin/x", 0o755, b"hello").unwrap();
        cpio.finish().unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        // usr, usr/local, usr/local/bin, the file, the trailer: each header starts aligned.
        let mut names = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            assert_eq!(at % 4, 0);
            assert_eq!(&bytes[at..at + 6], b"070701");
            let field = |i: usize| {
                let hex = std::str::from_utf8(&bytes[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
                usize::from_str_radix(hex, 16).unwrap()
            };
            let (size, name_len) = (field(6), field(11));
            let name = &bytes[at + 110..at + 110 + name_len - 1];
            names.push(String::from_utf8(name.to_vec()).unwrap());
            let data = (at + 110 + name_len).next_multiple_of(4);
            if names.last().unwrap() == "usr/local/bin/x" {
                assert_eq!(&bytes[data..data + size], b"hello");
            }
            at = (data + size).next_multiple_of(4);
        }
        assert_eq!(names, ["usr", "usr/local", "usr/local/bin", "usr/local/bin/x", "TRAILER!!!"]);
    }
}
