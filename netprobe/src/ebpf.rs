//! The embedded BPF object and how it is loaded.

use aya::{
    programs::{Program, ProgramError},
    Ebpf, EbpfLoader,
};
use netprobe_common::layout::{Filter, KernelLayout};

use crate::error::Error;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netprobe"));

/// Loads the object with its load-time globals; programs are loaded separately, by tier.
pub fn load(layout: &KernelLayout, filter: &Filter) -> Result<Ebpf, Error> {
    if OBJECT.is_empty() {
        return Err(Error::StubObject);
    }
    Ok(EbpfLoader::new()
        .set_global("LAYOUT", layout, true)
        .set_global("FILTER", filter, true)
        .load(OBJECT)?)
}

/// A program error with the verifier's or the kernel's own words.
pub fn describe(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            // The verifier's complaint, before the statistics it ends with.
            let stats = ["verification time", "stack depth", "processed "];
            let said = log.lines().rev().find(|l| !stats.iter().any(|s| l.starts_with(s)));
            let stat = log.lines().rev().find(|l| l.starts_with("processed "));
            let tail: Vec<&str> = said.into_iter().chain(stat).collect();
            if tail.is_empty() {
                format!("load failed: {io_error}")
            } else {
                format!("load failed: {io_error}; verifier: {}", tail.join(" | "))
            }
        }
        ProgramError::SyscallError(s) => format!("{}: {}", s.call, s.io_error),
        other => other.to_string(),
    }
}

/// A program of the object, as its concrete type.
pub fn program<'a, T>(bpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut Program, Error = ProgramError>,
{
    bpf.program_mut(name)
        .ok_or_else(|| Error::Object(format!("program {name}")))?
        .try_into()
        .map_err(|e| Error::Layout(describe(&e)))
}
