//! Kernel addresses to `function+0xoff`, from /proc/kallsyms.

use std::{fs, io};

pub struct Kallsyms {
    /// Sorted by address.
    syms: Vec<(u64, String)>,
}

impl Kallsyms {
    pub fn load() -> io::Result<Self> {
        Ok(Self::parse(&fs::read_to_string("/proc/kallsyms")?))
    }

    /// Parses kallsyms text; only text (code) symbols are kept.
    pub fn parse(text: &str) -> Self {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut it = line.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_owned()))
            })
            .collect();
        syms.sort_unstable();
        Self { syms }
    }

    /// False when the kernel hides addresses (kptr_restrict) from this process.
    pub fn is_usable(&self) -> bool {
        !self.syms.is_empty()
    }

    /// The address of function `name`, if the kernel shows it.
    pub fn address(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|(_, n)| n == name).map(|(a, _)| *a)
    }

    pub fn symbolize(&self, addr: u64) -> String {
        match self.syms.partition_point(|(a, _)| *a <= addr) {
            0 => format!("{addr:#x}"),
            i => {
                let (base, name) = &self.syms[i - 1];
                format!("{name}+{:#x}", addr - base)
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
