//! The floor: empty programs (`r0 = 0; exit`) of the same program types on the same hooks as
//! netprobe's, so that what the bare hooks cost is measured apart from what netprobe does in
//! them. The object is assembled here with LLVM's BPF assembler (llvm-mc, from llvm-22, which
//! scripts/install-deps installs) and loaded with aya; dropping the `Floor` detaches it.

use std::{fmt::Write as _, fs, path::Path, process::Command};

use anyhow::{bail, Context, Result};
use aya::{programs::Program, Btf, Ebpf};
use netprobe::Point;

const LLVM_MC: &str = "/usr/lib/llvm-22/bin/llvm-mc";

/// Empty programs attached to `points`, until dropped.
pub struct Floor {
    _bpf: Ebpf,
}

/// Program names are `floor_<index into points>`: bpf_stats tells them apart by it.
pub fn program_name(i: usize) -> String {
    format!("floor_{i}")
}

impl Floor {
    pub fn attach(points: &[Point], dir: &Path) -> Result<Self> {
        let functions = functions()?;
        let first = |candidates: &[&'static str]| -> Result<&'static str> {
            candidates
                .iter()
                .copied()
                .find(|f| functions.contains(*f))
                .with_context(|| format!("this kernel has none of {}", candidates.join(", ")))
        };
        let mut asm = String::new();
        // (program, category or "", target) for each point.
        let mut targets = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let (kind, category, target) = match *p {
                Point::TpBtf(tp) => ("tp_btf", "", tp),
                Point::RawTracepoint(tp) => ("raw_tp", "", tp),
                Point::Tracepoint(category, tp) => ("tracepoint", category, tp),
                Point::Fentry(c) => ("fentry", "", first(c)?),
                Point::Fexit(c) => ("fexit", "", first(c)?),
                Point::Kprobe(c) => ("kprobe", "", first(c)?),
                Point::Kretprobe(c) => ("kretprobe", "", first(c)?),
                // An empty cgroup_skb program would have to allow every packet (return 1),
                // on the whole node's root cgroup: not among the benchmarked families yet.
                Point::CgroupSkb { .. } => bail!("the floor has no cgroup_skb programs"),
            };
            let parts = [kind, category, target];
            let section = parts.iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>();
            let section = section.join("/");
            let name = program_name(i);
            writeln!(
                asm,
                "\t.section \"{section}\",\"ax\",@progbits\n\t.globl {name}\n\t.type {name},@function\n\
                 {name}:\n\tr0 = 0\n\texit\n.Lend{i}:\n\t.size {name}, .Lend{i}-{name}"
            )?;
            targets.push((name, category, target));
        }
        asm.push_str(
            "\t.section \"license\",\"aw\",@progbits\n\t.globl _license\n_license:\n\t.asciz \"GPL\"\n",
        );
        fs::create_dir_all(dir)?;
        let (source, object) = (dir.join("floor.s"), dir.join("floor.o"));
        fs::write(&source, asm)?;
        let ok = Command::new(LLVM_MC)
            .args(["-triple", "bpfel", "-filetype=obj", "-o"])
            .arg(&object)
            .arg(&source)
            .status()
            .with_context(|| format!("running {LLVM_MC} (scripts/install-deps installs llvm-22)"))?
            .success();
        if !ok {
            bail!("{LLVM_MC} failed on {}", source.display());
        }
        let mut bpf = Ebpf::load(&fs::read(&object)?)?;
        let btf = Btf::from_sys_fs()?;
        for (name, category, target) in targets {
            let program = bpf.program_mut(&name).with_context(|| format!("program {name}"))?;
            attach(program, category, target, &btf)
                .with_context(|| format!("floor program {name} on {target}"))?;
        }
        Ok(Self { _bpf: bpf })
    }
}

fn attach(program: &mut Program, category: &str, target: &str, btf: &Btf) -> Result<()> {
    match program {
        Program::BtfTracePoint(p) => {
            p.load(target, btf)?;
            p.attach()?;
        }
        Program::RawTracePoint(p) => {
            p.load()?;
            p.attach(target)?;
        }
        Program::TracePoint(p) => {
            p.load()?;
            p.attach(category, target)?;
        }
        Program::FEntry(p) => {
            p.load(target, btf)?;
            p.attach()?;
        }
        Program::FExit(p) => {
            p.load(target, btf)?;
            p.attach()?;
        }
        Program::KProbe(p) => {
            p.load()?;
            p.attach(target, 0)?;
        }
        _ => bail!("unexpected program type"),
    }
    Ok(())
}

/// The kernel's function names, for the first of a hook's candidates it has.
fn functions() -> Result<std::collections::HashSet<String>> {
    let text = fs::read_to_string("/proc/kallsyms")?;
    Ok(text.lines().filter_map(|l| l.split_whitespace().nth(2)).map(str::to_owned).collect())
}
