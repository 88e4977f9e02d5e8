//! Debian's cloud kernels, fetched with `apt-get download` through a private apt
//! configuration under target/vm/apt: the machine's own sources and lists are never touched,
//! and the archive's address is the one the machine's apt already uses.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

pub struct Kernel {
    /// What `--kernel` matches: "6.12" selects both 6.12 builds.
    pub name: &'static str,
    suite: &'static str,
    security: bool,
    /// linux-image-{prefix}{ABI}{suffix}, the newest ABI wins.
    prefix: &'static str,
    suffix: &'static str,
}

pub const ALL: &[Kernel] = &[
    Kernel {
        name: "5.10",
        suite: "bullseye-security",
        security: true,
        prefix: "linux-image-5.10.0-",
        suffix: "-cloud-amd64",
    },
    Kernel {
        name: "6.1",
        suite: "bookworm",
        security: false,
        prefix: "linux-image-6.1.0-",
        suffix: "-cloud-amd64",
    },
    Kernel {
        name: "6.12+deb12",
        suite: "bookworm-backports",
        security: false,
        prefix: "linux-image-6.12.",
        suffix: "+deb12-cloud-amd64",
    },
    Kernel {
        name: "6.12+deb13",
        suite: "trixie-security",
        security: true,
        prefix: "linux-image-6.12.",
        suffix: "+deb13-cloud-amd64",
    },
];

pub fn select(which: &str) -> Result<Vec<&'static Kernel>> {
    let chosen: Vec<_> = ALL
        .iter()
        .filter(|k| which == "all" || k.name == which || k.name.starts_with(&format!("{which}+")))
        .collect();
    if chosen.is_empty() {
        let names: Vec<_> = ALL.iter().map(|k| k.name).collect();
        bail!("no kernel `{which}`; known: all, 5.10, 6.1, 6.12, {}", names.join(", "));
    }
    Ok(chosen)
}

/// An extracted kernel package.
pub struct Extracted {
    /// The package's name and version.
    pub package: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

/// Downloads and extracts `kernels` into `vm/kernels/<name>/` unless already there.
pub fn fetch(vm: &Path, kernels: &[&Kernel]) -> Result<Vec<Extracted>> {
    let apt = Apt::new(&vm.join("apt"))?;
    let mut updated = false;
    kernels
        .iter()
        .map(|k| {
            let dir = vm.join("kernels").join(k.name);
            if let Ok(found) = extracted(&dir) {
                return Ok(found);
            }
            if !updated {
                apt.update()?;
                updated = true;
            }
            let package = apt.newest(k)?;
            println!("vm-test: fetching {package} ({})", k.suite);
            let debs = vm.join("debs");
            fs::create_dir_all(&debs)?;
            apt.run(&["download", &package], &debs)?;
            let deb = fs::read_dir(&debs)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
                    })
                })
                .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("root"))?;
            let status =
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(dir.join("root")).status()?;
            if !status.success() {
                bail!("dpkg-deb -x {} failed", deb.display());
            }
            // modules.dep is made by the package's postinst, which never ran: depmod it here.
            // Named with its version, which the ABI in the name does not give.
            let file = deb.file_name().unwrap().to_string_lossy();
            let version = file.split('_').nth(1).unwrap_or("?");
            let found = extracted_at(&dir, format!("{package} {version}"))?;
            let release = found.modules.file_name().unwrap();
            let base = found.modules.parent().unwrap().parent().unwrap().parent().unwrap();
            let status = Command::new("depmod").arg("-b").arg(base).arg(release).status()?;
            if !status.success() {
                bail!("depmod -b {} failed", base.display());
            }
            // Written last: a half-extracted kernel is fetched again.
            fs::write(dir.join("package"), &found.package)?;
            Ok(found)
        })
        .collect()
}

/// A kernel extracted and depmod-ed by an earlier run.
fn extracted(dir: &Path) -> Result<Extracted> {
    let package = fs::read_to_string(dir.join("package"))?.trim().to_string();
    extracted_at(dir, package)
}

fn extracted_at(dir: &Path, package: String) -> Result<Extracted> {
    let root = dir.join("root");
    let vmlinuz = fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .context("no boot/vmlinuz-* in the package")?;
    let release = vmlinuz.file_name().unwrap().to_str().unwrap()["vmlinuz-".len()..].to_string();
    // Trixie's packages are merged-/usr.
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&release))
        .find(|d| d.join("modules.builtin").exists())
        .context("no modules (modules.builtin) in the package")?;
    Ok(Extracted { package, vmlinuz, modules })
}

/// apt-get and apt-cache with their sources, lists and caches under one private directory.
struct Apt {
    opts: Vec<String>,
}

impl Apt {
    fn new(dir: &Path) -> Result<Self> {
        let (main, security) = archives()?;
        for d in ["lists/partial", "cache/archives/partial", "parts"] {
            fs::create_dir_all(dir.join(d))?;
        }
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let list: String = ALL
            .iter()
            .map(|k| {
                let site = if k.security { &security } else { &main };
                format!("deb [signed-by={keyring}] {site} {} main\n", k.suite)
            })
            .collect();
        fs::write(dir.join("sources.list"), list)?;
        let opt = |k: &str, v: &str| ["-o".to_string(), format!("{k}={}", dir.join(v).display())];
        let mut opts = Vec::new();
        opts.extend(opt("Dir::Etc::SourceList", "sources.list"));
        opts.extend(opt("Dir::Etc::SourceParts", "parts"));
        opts.extend(opt("Dir::State::Lists", "lists"));
        opts.extend(opt("Dir::Cache", "cache"));
        // Downloads land in target/, which the _apt user may not be able to write.
        opts.extend(["-o".to_string(), "APT::Sandbox::User=root".to_string()]);
        Ok(Self { opts })
    }

    fn update(&self) -> Result<()> {
        println!("vm-test: apt-get update (private lists under target/vm/apt)");
        self.run(&["update", "-q"], Path::new("."))
    }

    fn run(&self, args: &[&str], cwd: &Path) -> Result<()> {
        let status =
            Command::new("apt-get").args(&self.opts).args(args).current_dir(cwd).status()?;
        if !status.success() {
            bail!("apt-get {} failed", args.join(" "));
        }
        Ok(())
    }

    /// The kernel's package with the highest ABI number in the lists.
    fn newest(&self, k: &Kernel) -> Result<String> {
        let out =
            Command::new("apt-cache").args(&self.opts).args(["pkgnames", k.prefix]).output()?;
        let names = String::from_utf8_lossy(&out.stdout);
        names
            .lines()
            .filter_map(|n| {
                let abi = n.strip_prefix(k.prefix)?.strip_suffix(k.suffix)?;
                Some((abi.parse::<u32>().ok()?, n.to_string()))
            })
            .max()
            .map(|(_, n)| n)
            .with_context(|| format!("no {}N{} in {}", k.prefix, k.suffix, k.suite))
    }
}

/// The Debian archive and its security archive, as the machine's own apt knows them: the
/// sites that serve its release and its release's security suite.
fn archives() -> Result<(String, String)> {
    let os = fs::read_to_string("/etc/os-release").context("/etc/os-release")?;
    let codename = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .context("no VERSION_CODENAME in /etc/os-release")?;
    let out = Command::new("apt-get")
        .args(["indextargets", "--format", "$(SITE) $(RELEASE)"])
        .output()
        .context("apt-get indextargets")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let site = |release: &str| {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(_, r)| *r == release)
            .map(|(site, _)| site.to_string())
    };
    match (site(codename), site(&format!("{codename}-security"))) {
        (Some(main), Some(security)) => Ok((main, security)),
        _ => bail!("the machine's apt sources have no {codename} and {codename}-security archives"),
    }
}
