//! A running netprobe: the attached hook families and the names needed to decode them.

use std::time::{Duration, Instant};

use aya::Btf;
use netprobe_common::layout::Filter;

use crate::{
    btf::KernelBtf,
    clock::Clock,
    drops::{decode, DropSample, Drops},
    error::Error,
    kallsyms::Kallsyms,
    pods::PodIndex,
    privileges::Privileges,
    reasons::Reasons,
};

/// How often unknown namespaces may trigger a rescan of /run/netns and /proc.
const POD_RESCAN: Duration = Duration::from_secs(1);

pub struct Agent {
    pub drops: Drops,
    pub reasons: Reasons,
    pub kallsyms: Kallsyms,
    pub pods: PodIndex,
    pub clock: Clock,
    /// The netns samples are filtered to, if any.
    pub pod_filter: Option<(String, u32)>,
    last_rescan: Instant,
}

impl Agent {
    pub fn start(pod: Option<&str>) -> Result<Self, Error> {
        Privileges::current().require()?;
        let btf = KernelBtf::from_sys()?;
        let aya_btf = Btf::from_sys_fs().map_err(|e| Error::Btf(e.to_string()))?;
        let pods = PodIndex::system();
        let pod_filter = match pod {
            None => None,
            Some(name) => {
                let netns = pods.lookup(name).ok_or_else(|| Error::UnknownPod {
                    name: name.to_owned(),
                    known: pods.pods().map(|p| p.name.clone()).collect(),
                })?;
                Some((name.to_owned(), netns))
            }
        };
        let filter = Filter { netns: pod_filter.as_ref().map_or(0, |(_, n)| *n), _pad: 0 };
        let drops = Drops::attach(&btf, &aya_btf, filter)?;
        Ok(Self {
            drops,
            reasons: Reasons::from_btf(&btf),
            kallsyms: Kallsyms::load()?,
            pods,
            clock: Clock::now(),
            pod_filter,
            last_rescan: Instant::now(),
        })
    }

    /// Decodes every sample waiting in the ring buffer.
    pub fn drain(&mut self, mut out: impl FnMut(DropSample)) {
        while let Some(item) = self.drops.samples.next() {
            let names = decode::Names {
                reasons: &self.reasons,
                kallsyms: &self.kallsyms,
                pods: &self.pods,
                clock: &self.clock,
            };
            let Some(mut sample) = decode::decode(&item, &names) else { continue };
            // A pod created after start: rescan, but not once per sample of a flood.
            if sample.netns != 0
                && !self.pods.contains(sample.netns)
                && self.last_rescan.elapsed() >= POD_RESCAN
            {
                self.pods.refresh();
                self.last_rescan = Instant::now();
                sample.pod = self.pods.name(sample.netns);
            }
            out(sample);
        }
    }
}
