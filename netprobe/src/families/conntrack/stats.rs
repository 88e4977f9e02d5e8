//! /proc/net/stat/nf_conntrack and the table's count and limit, read in one netns.

use std::{collections::HashMap, fs};

/// The counters that say what went wrong, summed over CPUs, and the table's fill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// New connections dropped because the table was full.
    pub drop: u64,
    /// Entries that lost an insert race (clashes) and whose packet was dropped.
    pub insert_failed: u64,
    /// Entries evicted to make room.
    pub early_drop: u64,
    pub invalid: u64,
    pub count: u64,
    pub max: u64,
}

impl Stats {
    /// This netns's, or None when conntrack is not in use here.
    pub fn read() -> Option<Self> {
        // /proc/net follows the thread-group leader's netns; thread-self follows ours, which
        // is the one nsenter entered.
        let table = fs::read_to_string("/proc/thread-self/net/stat/nf_conntrack").ok()?;
        let sysctl = |name: &str| {
            fs::read_to_string(format!("/proc/sys/net/netfilter/{name}")).ok()?.trim().parse().ok()
        };
        let sums = parse(&table);
        let col = |name: &str| sums.get(name).copied().unwrap_or(0);
        // `drop` also counts the losers of an insert race (`insert_failed`, less the inserts
        // refused for too long a hash chain, which are not in `drop`): what remains is the
        // full table's.
        let clash_drops = col("insert_failed").saturating_sub(col("chainlength"));
        Some(Self {
            drop: col("drop").saturating_sub(clash_drops),
            insert_failed: col("insert_failed"),
            early_drop: col("early_drop"),
            invalid: col("invalid"),
            count: sysctl("nf_conntrack_count")?,
            max: sysctl("nf_conntrack_max")?,
        })
    }

    /// Growth of the counters since `before`; the fill is the current one.
    pub fn since(&self, before: &Stats) -> Stats {
        Stats {
            drop: self.drop.saturating_sub(before.drop),
            insert_failed: self.insert_failed.saturating_sub(before.insert_failed),
            early_drop: self.early_drop.saturating_sub(before.early_drop),
            invalid: self.invalid.saturating_sub(before.invalid),
            ..*self
        }
    }

    pub fn grew(&self) -> bool {
        self.drop + self.insert_failed + self.early_drop + self.invalid > 0
    }
}

/// Column name to the sum over CPU lines (hex) of the header-and-lines table.
fn parse(text: &str) -> HashMap<String, u64> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return HashMap::new() };
    let names: Vec<&str> = header.split_whitespace().collect();
    let mut sums: HashMap<String, u64> = HashMap::new();
    for line in lines {
        for (name, v) in names.iter().zip(line.split_whitespace()) {
            // `entries` is the table's size, repeated on every line; not a per-CPU counter.
            if *name != "entries" {
                *sums.entry((*name).to_owned()).or_default() +=
                    u64::from_str_radix(v, 16).unwrap_or(0);
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_hex_columns_over_cpus() {
        let t = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error\n\
                 00000014  00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000002 0000002c 00000000 00000000\n\
                 00000014  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000010 00000003 00000000\n";
        let s = parse(t);
        assert_eq!(s["drop"], 60);
        assert_eq!(s["insert_failed"], 2);
        assert_eq!(s["early_drop"], 3);
        assert_eq!(s["invalid"], 1);
        assert!(!s.contains_key("entries"));
    }
}
