//! `netprobe doctor`: what this kernel allows, and which tier each hook family uses and why.

use std::{fs, path::Path};

use netprobe_common::layout::Filter;

use crate::{
    agent::{Family, Kernel},
    btf::{KernelBtf, VMLINUX},
    ebpf,
    hooks::{self, TRACEPOINT_TIERS},
    kallsyms::Kallsyms,
    privileges::Privileges,
    reasons::Reasons,
    tiers::{self, Tier},
    tracefs,
};

pub fn doctor() -> anyhow::Result<()> {
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
    let privileged = privs.require();
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
                "this kernel has no enum skb_drop_reason: reasons print as numbers",
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

    let (Some(_), Ok(())) = (btf, privileged) else {
        println!("\nHook tiers cannot be probed without BTF and privileges.");
        return Ok(());
    };
    let kernel = Kernel::resolve()?;

    println!("\nHook tiers on this kernel (probed by loading a program)");
    tier_row(Tier::Fentry, &tiers::probe_fentry(&kernel.aya_btf), "");
    tier_row(Tier::Kprobe, &tiers::probe_kprobe(), "");

    println!("\nHook families (each tier probed by loading its programs into the verifier)");
    let mut bpf = ebpf::load(&kernel.layout, &Filter::default())?;
    for family in Family::ALL {
        let tps: Vec<String> =
            family.tracepoints().iter().map(|t| format!("{}:{}", t.category, t.name)).collect();
        println!("  {} ({})", family.name(), tps.join(", "));
        // The upgrade tiers are probed above for the kernel; no family ships programs for
        // them yet, so every family runs on the tracepoint tier, complete on its own.
        println!("    {:<16}no program for this family; tracepoint tier below", "fentry/kprobe");
        let mut chosen = None;
        for tier in TRACEPOINT_TIERS {
            let r = family
                .tracepoints()
                .iter()
                .try_for_each(|tp| {
                    hooks::probe(&mut bpf, &kernel.aya_btf, &kernel.unavailable, tp, tier)
                })
                .map_err(|e| e.to_string());
            let mark = if r.is_ok() && chosen.is_none() {
                chosen = Some(tier);
                "<- in use"
            } else {
                ""
            };
            tier_row(tier, &r, mark);
        }
        if chosen.is_none() {
            println!("    no tier works: this family cannot run here (reasons above)");
        }
    }
    Ok(())
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
