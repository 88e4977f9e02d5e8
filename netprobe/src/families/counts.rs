//! A family's exact counters in the kernel: the maps it takes from the loaded object when it
//! attaches, read into its snapshot rows every second (`families/<name>/snapshot.rs`).

use std::collections::BTreeMap;

use aya::{
    maps::{MapData, PerCpuHashMap},
    Ebpf,
};

use crate::{error::Error, family::Family, names::Names};

/// One family's count maps, registered in `snapshot_rows!`.
pub trait Counts: Sized {
    const FAMILY: Family;
    /// One row of the family's snapshot.
    type Row;

    /// Takes the family's maps out of the loaded object.
    fn open(bpf: &mut Ebpf) -> Result<Self, Error>;

    /// The counts so far, as snapshot rows.
    fn rows(&self, names: &Names) -> Result<Vec<Self::Row>, Error>;

    /// The netns its keys count, so that the agent can forget the gone ones (none for
    /// per-CPU counters).
    fn netns(&self) -> Vec<u32> {
        Vec::new()
    }

    /// Deletes the keys of `netns`.
    fn forget(&mut self, _netns: u32) {}
}

/// The key of a family's count map keyed by netns (and more), and the row it becomes.
pub trait CountKey: aya::Pod + Ord {
    const FAMILY: Family;
    const MAP: &'static str;
    type Row;

    fn netns(&self) -> u32;

    /// None for a key this build cannot name.
    fn row(self, count: u64, names: &Names) -> Option<Self::Row>;
}

/// A count map keyed by `K`: per-CPU values of each key, summed when read.
pub struct NetnsCounts<K: aya::Pod>(PerCpuHashMap<MapData, K, u64>);

impl<K: CountKey> Counts for NetnsCounts<K> {
    const FAMILY: Family = K::FAMILY;
    type Row = K::Row;

    fn open(bpf: &mut Ebpf) -> Result<Self, Error> {
        Ok(Self(PerCpuHashMap::try_from(take(bpf, K::MAP)?)?))
    }

    /// In key order.
    fn rows(&self, names: &Names) -> Result<Vec<K::Row>, Error> {
        let mut exact = BTreeMap::new();
        for entry in self.0.iter() {
            let (key, per_cpu) = entry?;
            exact.insert(key, per_cpu.iter().sum());
        }
        Ok(exact.into_iter().filter_map(|(k, count)| k.row(count, names)).collect())
    }

    fn netns(&self) -> Vec<u32> {
        self.0.keys().flatten().map(|k| k.netns()).collect()
    }

    /// A key deleted under us by the kernel is no error.
    fn forget(&mut self, netns: u32) {
        let keys: Vec<K> = self.0.keys().flatten().filter(|k| k.netns() == netns).collect();
        for k in keys {
            let _ = self.0.remove(&k);
        }
    }
}

pub fn take(bpf: &mut Ebpf, name: &str) -> Result<aya::maps::Map, Error> {
    bpf.take_map(name).ok_or_else(|| Error::Object(format!("map {name}")))
}
