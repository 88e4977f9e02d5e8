//! `netprobe doctor`: what this kernel allows, and which tier each hook family uses and why.

use std::{
    fs,
    path::{Path, PathBuf},
};

use netprobe_common::layout::Filter;

use crate::{
    agent::Kernel,
    btf::{KernelBtf, VMLINUX},
    cri, ebpf,
    families::softnet::on_squeeze::RunHooks,
    family::Family,
    hooks,
    kallsyms::Kallsyms,
    pods::runtime::Runtime,
    privileges::Privileges,
    reasons::Reasons,
    tiers::{self, Tier},
    tracefs,
};

pub fn doctor(cri_socket: Option<PathBuf>) -> anyhow::Result<()> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    row("kernel", release.trim());

    let privs = Privileges::current();
    let caps: Vec<String> = privs
        .table()
        .iter()
        .map(|(n, has)| format!("{n} {}", if *has { "yes" } else { "no" }))
        .collect();
    row("privileges", &format!("euid {}; {}", privs.euid, caps.join(", ")));
    row("memlock", &crate::privileges::memlock_status());
    let privileged = privs.require(None);
    if let Err(e) = &privileged {
        row("", &format!("-> {e}"));
    }

    let btf = if Path::new(VMLINUX).exists() {
        row("BTF", VMLINUX);
        KernelBtf::from_sys().map_err(|e| row("", &format!("-> unreadable: {e}"))).ok()
    } else {
        row("BTF", "missing: struct layouts and reason names cannot be read (need CONFIG_DEBUG_INFO_BTF=y)");
        None
    };
    if let Some(btf) = &btf {
        let reasons = Reasons::from_btf(btf);
        if reasons.is_empty() {
            row(
                "drop reasons",
                &format!(
                    "this kernel has no drop reasons: drops are classified by where they were \
                     freed (reason `{}`)",
                    crate::reasons::NONE
                ),
            );
        } else {
            row("drop reasons", "named from the kernel's enum skb_drop_reason");
        }
    }
    match tracefs::mounted() {
        Some(p) => row("tracefs", &p.display().to_string()),
        None => row(
            "tracefs",
            "not mounted (netprobe mounts it if the classic tracepoint tier is needed)",
        ),
    }
    match Kallsyms::load() {
        Ok(k) if k.is_usable() => row("kallsyms", "readable: drop locations are symbolised"),
        Ok(_) => row("kallsyms", "addresses hidden (kptr_restrict): locations print as addresses"),
        Err(e) => row("kallsyms", &format!("unreadable: {e}")),
    }

    runtime(cri_socket);

    let (Some(_), Ok(())) = (btf, privileged) else {
        println!("\nHook tiers cannot be probed without BTF and privileges.");
        return Ok(());
    };
    let kernel = Kernel::resolve(tracefs::Tracefs::open())?;

    let env = kernel.env();
    let mut bpf = ebpf::load(&kernel.layout, &Filter::default())?;
    println!("\nHook tiers on this kernel (probed by loading and attaching a program)");
    for variant in tiers::probes() {
        let r = hooks::probe(&mut bpf, &env, &variant).map_err(|e| e.to_string());
        tier_row(variant.tier, &r, "");
    }

    println!("\nHook families (each tier probed by loading and attaching its programs)");
    for family in Family::ALL {
        let variants = family.variants();
        // Every hook point of any tier, best tier's first: functions as well as tracepoints.
        let mut hooks: Vec<String> = Vec::new();
        for h in variants.iter().flat_map(|v| &v.hooks).map(|h| h.describe()) {
            if !hooks.contains(&h) {
                hooks.push(h);
            }
        }
        println!("  {} ({})", family.name(), hooks.join(", "));
        let mut chosen = None;
        let tracing = variants.iter().any(|v| v.tier.is_tracing());
        for tier in Tier::ALL {
            let Some(variant) = variants.iter().find(|v| v.tier == tier) else {
                // Tiers of the other kind (tracing, or packet hooks) are not this family's.
                if tier.is_tracing() != tracing {
                    continue;
                }
                let module = family.functions().iter().find_map(|f| f.module);
                let why = match module {
                    Some(m) if tier == Tier::Fentry => hooks::no_fentry_in(m),
                    _ => "no program of this family at this tier".into(),
                };
                println!("    {:<16}{why}", tier.to_string());
                continue;
            };
            let r = hooks::probe(&mut bpf, &env, variant).map_err(|e| e.to_string());
            let mark = if r.is_ok() && chosen.is_none() {
                chosen = Some(tier);
                "<- in use"
            } else {
                ""
            };
            tier_row(tier, &r, mark);
        }
        if chosen.is_none() {
            println!(
                "    no tier works: this family cannot run here (reasons above); the others run \
                 without it"
            );
        }
        if family == Family::Softnet {
            println!("    default families and agent: {}", RunHooks::OnSqueeze.describe());
            println!("    --events softnet, bursts: {}", RunHooks::Always.describe());
        }
    }
    Ok(())
}

/// The container runtime: whether it names pods here, and which pods have no netns of their own.
fn runtime(socket: Option<PathBuf>) {
    let Some(socket) = socket else {
        let looked = cri::DEFAULT_SOCKETS.join(", ");
        row(
            "runtime",
            &format!("none found ({looked}): pods are named by their network namespaces"),
        );
        return;
    };
    let r = Runtime::start(socket.clone());
    r.status(|s| match (&s.error, &s.runtime) {
        (Some(_), _) | (None, None) => {
            let e = s.error.as_deref().unwrap_or("no answer");
            row("runtime", &format!("{}: {e}", socket.display()));
            row("", "-> pods are named by their network namespaces, not as Kubernetes pods");
        }
        (None, Some(rt)) => {
            let host: Vec<String> = s
                .pods
                .iter()
                .filter(|p| p.netns_inode.is_none())
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect();
            row(
                "runtime",
                &format!(
                    "{} {} at {}: {} pods",
                    rt.name,
                    rt.version,
                    socket.display(),
                    s.pods.len()
                ),
            );
            if !host.is_empty() {
                row(
                    "",
                    &format!(
                        "hostNetwork (their traffic counts as the node's): {}",
                        host.join(", ")
                    ),
                );
            }
        }
    });
}

fn row(key: &str, value: &str) {
    println!("{key:<14}{value}");
}

fn tier_row(tier: Tier, result: &Result<(), String>, mark: &str) {
    match result {
        Ok(()) => println!("    {:<16}available  {mark}", tier.to_string()),
        Err(why) => println!("    {:<16}unavailable: {why}", tier.to_string()),
    }
    println!("    {:<16}(needs {})", "", tier.needs());
}
