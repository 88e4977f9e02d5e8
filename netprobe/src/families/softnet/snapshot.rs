//! The softnet family's exact counts per CPU, and its rows of a counter snapshot.

use aya::maps::{MapData, PerCpuArray};
use netprobe_common::softnet::SoftnetCounters;

use super::CpuSoftnet;
use crate::{
    error::Error,
    families::counts::{self, take},
    family::Family,
    names::Names,
};

pub struct Counts(PerCpuArray<MapData, SoftnetCounters>);

impl counts::Counts for Counts {
    const FAMILY: Family = Family::Softnet;
    type Row = CpuSoftnet;

    fn open(bpf: &mut aya::Ebpf) -> Result<Self, Error> {
        Ok(Self(PerCpuArray::try_from(take(bpf, super::COUNTERS_MAP)?)?))
    }

    fn rows(&self, _: &Names) -> Result<Vec<CpuSoftnet>, Error> {
        Ok(self
            .0
            .get(&0, 0)?
            .iter()
            .enumerate()
            .map(|(cpu, c)| CpuSoftnet {
                cpu: cpu as u32,
                runs: c.runs,
                packets: c.packets,
                busy_ns: c.busy_ns,
                squeezes: c.squeezes,
                covered_runs: c.covered_runs,
            })
            .collect())
    }
}
