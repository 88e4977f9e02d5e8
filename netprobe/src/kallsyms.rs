//! Kernel addresses to `function+0xoff`, from /proc/kallsyms.

use std::{cell::RefCell, collections::HashMap, fs, io};

pub struct Kallsyms {
    /// (address, start and length of the name in `names`), sorted by address. One arena
    /// rather than a String each: the kernel has over a hundred thousand functions.
    syms: Vec<(u64, u32, u32)>,
    names: String,
    /// Drops come from a few places, again and again: each address is looked up and
    /// formatted once (bounded; emptied when full).
    seen: RefCell<HashMap<u64, String>>,
}

/// Addresses `symbolize` remembers.
const SEEN_MAX: usize = 4096;

impl Kallsyms {
    pub fn load() -> io::Result<Self> {
        Ok(Self::parse(&fs::read_to_string("/proc/kallsyms")?))
    }

    /// Parses kallsyms text; only text (code) symbols are kept.
    pub fn parse(text: &str) -> Self {
        let mut names = String::new();
        let mut syms: Vec<(u64, u32, u32)> = text
            .lines()
            .filter_map(|line| {
                let mut it = line.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                if addr == 0 || !matches!(kind, "t" | "T") {
                    return None;
                }
                let start = names.len() as u32;
                names.push_str(name);
                Some((addr, start, name.len() as u32))
            })
            .collect();
        syms.sort_unstable();
        names.shrink_to_fit();
        Self { syms, names, seen: RefCell::default() }
    }

    fn name(&self, (_, start, len): (u64, u32, u32)) -> &str {
        &self.names[start as usize..(start + len) as usize]
    }

    /// False when the kernel hides addresses (kptr_restrict) from this process.
    pub fn is_usable(&self) -> bool {
        !self.syms.is_empty()
    }

    /// The address of function `name`, if the kernel shows it.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|s| self.name(**s) == name).map(|s| s.0)
    }

    pub fn symbolize(&self, addr: u64) -> String {
        let mut seen = self.seen.borrow_mut();
        if let Some(s) = seen.get(&addr) {
            return s.clone();
        }
        if seen.len() >= SEEN_MAX {
            seen.clear();
        }
        let s = self.lookup(addr);
        seen.insert(addr, s.clone());
        s
    }

    fn lookup(&self, addr: u64) -> String {
        match self.syms.partition_point(|(a, ..)| *a <= addr) {
            0 => format!("{addr:#x}"),
            i => {
                let sym = self.syms[i - 1];
                format!("{}+{:#x}", self.name(sym), addr - sym.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXCERPT: &str = "\
ffffffff81a00000 T nf_hook_slow
ffffffff81a00120 t nf_hook_slow_list
ffffffff81b00000 T tcp_v4_rcv
ffffffff81c00000 D some_data
ffffffffc0100000 t veth_xmit\t[veth]
";

    #[test]
    fn symbolizes_inside_and_at_functions() {
        let k = Kallsyms::parse(EXCERPT);
        assert_eq!(k.symbolize(0xffffffff81a0009c), "nf_hook_slow+0x9c");
        assert_eq!(k.symbolize(0xffffffff81a00120), "nf_hook_slow_list+0x0");
        assert_eq!(k.symbolize(0xffffffffc0100010), "veth_xmit+0x10");
        assert_eq!(k.address("tcp_v4_rcv"), Some(0xffffffff81b00000));
        assert_eq!(k.address("some_data"), None);
    }

    #[test]
    fn data_symbols_are_not_functions() {
        let k = Kallsyms::parse(EXCERPT);
        assert_eq!(k.symbolize(0xffffffff81c00004), "tcp_v4_rcv+0x100004");
    }

    #[test]
    fn below_every_symbol_prints_the_address() {
        let k = Kallsyms::parse(EXCERPT);
        assert_eq!(k.symbolize(0x1000), "0x1000");
    }

    #[test]
    fn hidden_addresses_are_detected() {
        let k = Kallsyms::parse("0000000000000000 T nf_hook_slow\n");
        assert!(!k.is_usable());
    }
}
