//! A running netprobe: one BPF object with the selected hook families attached, its ring
//! buffer and counters, and the names needed to decode what it reports.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    Btf, Ebpf,
};
use netprobe_common::{event::kind as record, layout::Filter, stats};

use crate::{
    btf::KernelBtf,
    clock::Clock,
    ebpf,
    error::Error,
    event::Event,
    families::{
        bursts::{self, live::Live, scope::Scope, threshold::Threshold, BinReader, Direction},
        counts::take,
        linklocal, ports,
        softnet::{
            self,
            on_squeeze::{OnSqueeze, RunHooks},
        },
        CountMaps, Rows,
    },
    family::{Family, FamilyUnavailable},
    health::Health,
    hooks::{self, Attached, Function, Tracepoint, Unavailable},
    kallsyms::Kallsyms,
    layout,
    names::{Names, TcpStates},
    pods::{selection::Selection, PodIndex},
    poll::Poller,
    privileges::Privileges,
    reasons::Reasons,
    tiers::Tier,
    tracefs::{Tracefs, Unreadable},
    wire,
};

/// How often unknown namespaces may trigger a rescan of /run/netns and /proc.
const POD_RESCAN: Duration = Duration::from_secs(1);

/// The kernel's layout and BTF, resolved once for loading and for `doctor`.
pub struct Kernel {
    pub btf: KernelBtf,
    pub aya_btf: Btf,
    pub kallsyms: Kallsyms,
    pub layout: layout::KernelLayout,
    pub unavailable: Unavailable,
    /// Kept while the classic tracepoints may still be attached (netprobe's own mount is
    /// undone when this drops).
    pub tracefs: Option<Tracefs>,
}

impl Kernel {
    pub fn env(&self) -> hooks::Env<'_> {
        hooks::Env {
            btf: &self.aya_btf,
            kernel_btf: &self.btf,
            kallsyms: &self.kallsyms,
            unavailable: &self.unavailable,
        }
    }

    pub fn resolve(tracefs: Result<Tracefs, Unreadable>) -> Result<Self, Error> {
        let btf = KernelBtf::from_sys()?;
        let aya_btf = Btf::from_sys_fs().map_err(|e| Error::Btf(e.to_string()))?;
        let tps: Vec<&Tracepoint> =
            Family::ALL.iter().flat_map(|f| f.tracepoints().iter().copied()).collect();
        let kallsyms = Kallsyms::load()?;
        let functions: Vec<&Function> =
            Family::ALL.iter().flat_map(|f| f.functions().iter().copied()).collect();
        let (layout, unavailable) =
            layout::resolve(&btf, &kallsyms, tracefs.as_ref(), &tps, &functions)?;
        Ok(Self { btf, aya_btf, kallsyms, layout, unavailable, tracefs: tracefs.ok() })
    }
}

/// What to attach and how: every command starts its agent from one of these.
pub struct AgentConfig {
    /// Only these pods' samples (filtered in the kernel); counts are kept for every pod.
    pub selection: Selection,
    /// The container runtime's socket, for Kubernetes pod names.
    pub cri_socket: Option<PathBuf>,
    pub families: Vec<Family>,
    /// How long the kernel keeps counting a netns that is gone before its keys are deleted,
    /// so that a long run stays bounded: late samples and the last snapshot still see them.
    pub forget_after: Duration,
    /// Only this tier, for every family (testing, or avoiding a tier that misbehaves); None:
    /// the best tier that works, per family.
    pub tier: Option<Tier>,
    /// With the bursts family: how to bin.
    pub bursts: BurstsConfig,
    /// With the softnet family: whether its per-run hooks stay attached or follow squeezes.
    pub softnet_runs: RunHooks,
    /// False when nothing reads drop samples: report, record and agent take drops and their
    /// locations from the exact counters. The kernel then only counts each drop, which costs
    /// half as much as sampling it too (docs/benchmarks.md).
    pub drop_samples: bool,
    /// With the linklocal family: the cluster DNS IPs to count and the limit.
    pub linklocal: linklocal::Settings,
}

/// Which interfaces the bursts family bins, and how.
pub struct BurstsConfig {
    pub bin_ns: u64,
    pub threshold: Threshold,
    /// Only this interface; None: every one but loopback, and those that appear later.
    pub interface: Option<String>,
    pub directions: Vec<Direction>,
    /// Keep per-bin rate histograms (report, bursts), not only burst records (watch).
    pub histograms: bool,
    /// Quiet time inside a burst that does not end it.
    pub merge_gap_ns: u64,
}

pub struct Agent {
    // Owns the programs and their links: dropping it detaches everything (nothing is pinned).
    _ebpf: Ebpf,
    // Dropped after the links: unmounts tracefs if this process mounted it.
    _tracefs: Option<Tracefs>,
    samples: RingBuf<MapData>,
    stats: PerCpuArray<MapData, u64>,
    counts: CountMaps,
    /// What linklocal was started with, when it runs.
    linklocal: Option<linklocal::Settings>,
    /// The softnet per-run hooks, when they follow squeezes.
    on_squeeze: Option<OnSqueeze>,
    port_context: ports::context::Context,
    attached: Vec<(Family, Attached)>,
    /// Families asked for that no tier of works here; the others run without them.
    unavailable: Vec<FamilyUnavailable>,
    names: Names,
    selection: Selection,
    /// The netns the selection matches now, kept in step with SELECTED.
    selected: BTreeSet<u32>,
    selected_map: HashMap<MapData, u32, u8>,
    last_rescan: Instant,
    poller: Poller,
    /// Whether the container runtime answered at the last look; notes say when that changes.
    runtime_answers: Option<bool>,
    notes: Vec<String>,
    forget_after: Duration,
    /// Namespaces counted in the kernel maps but no longer there, since when.
    gone_since: std::collections::HashMap<u32, Instant>,
    bursts: Option<Live>,
}

impl Agent {
    /// Resolves the kernel, loads the object, attaches the families and, with bursts, starts
    /// binning. Blocking: run it through `run::Shutdown::start`.
    pub fn start(config: AgentConfig) -> Result<Self, Error> {
        let pods = PodIndex::system(config.cri_socket.clone());
        let mut agent = Self::attach(
            pods,
            config.selection,
            &config.families,
            config.tier,
            config.softnet_runs,
            config.drop_samples,
        )?;
        if config.cri_socket.is_none() {
            let looked = crate::cri::DEFAULT_SOCKETS.join(", ");
            agent.notes.push(format!(
                "no container runtime socket ({looked}; see --cri-socket): pods are named by \
                 their network namespaces"
            ));
        }
        for u in &agent.unavailable {
            agent.notes.push(format!(
                "{} does not run here, the other families do: {}",
                u.family.name(),
                u.why
            ));
        }
        agent.check_runtime();
        if agent.attached.iter().any(|(f, _)| *f == Family::Linklocal) {
            let mut ips = HashMap::try_from(take(&mut agent._ebpf, linklocal::DNS_IPS_MAP)?)?;
            linklocal::set_dns_ips(&mut ips, &config.linklocal.dns_ips)?;
            agent.linklocal = Some(config.linklocal);
        }
        agent.forget_after = config.forget_after;
        if agent.attached.iter().any(|(f, _)| *f == Family::Bursts) {
            agent.start_bursts(&config.bursts)?;
        }
        Ok(agent)
    }

    fn attach(
        pods: PodIndex,
        selection: Selection,
        families: &[Family],
        tier: Option<Tier>,
        softnet_runs: RunHooks,
        drop_samples: bool,
    ) -> Result<Self, Error> {
        let mut families = families.to_vec();
        families.sort();
        families.dedup();
        let mut plan = Vec::new();
        for family in families {
            let mut variants = family.variants();
            if let Some(only) = tier {
                let offered = variants.iter().map(|v| v.tier.to_string()).collect();
                variants.retain(|v| v.tier == only);
                if variants.is_empty() {
                    return Err(Error::TierNotOffered {
                        family: family.name(),
                        tier: only,
                        offered,
                    });
                }
            }
            plan.push((family, variants));
        }
        // What tracefs lacks is missing only when no family asked for can run without it;
        // otherwise the ones that cannot are left out, with why.
        let tracefs = Tracefs::open();
        let classic_only = plan.iter().flat_map(|(_, v)| v).all(|v| v.tier == Tier::Tracepoint);
        let tracefs_needs = tracefs.as_ref().err().and_then(|u| u.capability);
        Privileges::current().require(tracefs_needs.filter(|_| classic_only))?;
        let kernel = Kernel::resolve(tracefs)?;
        let selected = selection.resolve(&pods)?;
        let filter = Filter {
            by_selection: u32::from(!selection.is_all()),
            drop_samples: u32::from(drop_samples),
        };
        let mut bpf = ebpf::load(&kernel.layout, &filter)?;
        let mut selected_map = HashMap::try_from(take(&mut bpf, "SELECTED")?)?;
        sync_selected(&mut selected_map, &BTreeSet::new(), &selected)?;
        let mut attached = Vec::new();
        let mut failed = Vec::new();
        let mut on_squeeze = None;
        for (family, variants) in plan {
            match hooks::attach_family(family.name(), &mut bpf, &kernel.env(), &variants) {
                // Attached once, so its tier is known and its programs loaded; then detached
                // until CPUs squeeze.
                Ok((a, links))
                    if family == Family::Softnet && softnet_runs == RunHooks::OnSqueeze =>
                {
                    let runs = PerCpuArray::try_from(take(&mut bpf, softnet::RUN_MAP)?)?;
                    let (relink, tier) = (a.relink.clone(), a.tier);
                    on_squeeze = Some(OnSqueeze::start(&mut bpf, links, relink, tier, runs));
                    attached.push((family, a));
                }
                // The links stay with the programs in `bpf` until it is dropped.
                Ok((a, _links)) => attached.push((family, a)),
                // One family this kernel cannot run must not take the others down.
                Err(e @ Error::NoTier { .. }) => failed.push((family, e)),
                Err(e) => return Err(e),
            }
        }
        let unavailable = unavailable(attached.len(), failed)?;
        let has = |f| attached.iter().any(|(g, _)| *g == f);
        let counts = CountMaps::open(&mut bpf, has)?;
        let tcp_states = TcpStates::from_btf(&kernel.btf);
        let port_context = ports::context::Context::new(tcp_states.value("TIME_WAIT"));
        let poller = Poller::new(
            tcp_states.value("LISTEN").filter(|_| has(Family::Drops)),
            has(Family::Conntrack),
            &namespaces(&pods, &selection, &selected),
        );
        Ok(Self {
            samples: RingBuf::try_from(take(&mut bpf, "SAMPLES")?)?,
            stats: PerCpuArray::try_from(take(&mut bpf, "STATS")?)?,
            _ebpf: bpf,
            _tracefs: kernel.tracefs,
            counts,
            linklocal: None,
            on_squeeze,
            port_context,
            attached,
            unavailable,
            names: Names {
                reasons: Reasons::from_btf(&kernel.btf),
                tcp_states,
                kallsyms: kernel.kallsyms,
                pods,
                clock: Clock::now(),
            },
            selection,
            selected,
            selected_map,
            last_rescan: Instant::now(),
            poller,
            runtime_answers: None,
            notes: Vec::new(),
            forget_after: FORGET_AFTER,
            gone_since: Default::default(),
            bursts: None,
        })
    }

    /// Decodes every sample waiting in the ring buffer, then what the per-netns poll found
    /// grown, when a poll is due (or `final_poll`, at the end of a collection). Burst bins are
    /// read before the ring buffer (see `Live::read`), burst records go to the merger, and
    /// the bursts that can no longer grow come out after.
    pub fn drain(&mut self, mut out: impl FnMut(Event), final_poll: bool) {
        if let Some(live) = &mut self.bursts {
            live.read(final_poll);
        }
        while let Some(item) = self.samples.next() {
            if wire::header(&item).map(|h| h.kind) == Some(record::BURST) {
                if let Some(live) = &mut self.bursts {
                    live.record(&item);
                }
                continue;
            }
            let Some(mut event) = Event::decode(&item, &self.names) else { continue };
            let netns = event.netns();
            // A pod created after start: rescan, but not once per sample of a flood.
            if netns != 0
                && !self.names.pods.contains(netns)
                && self.last_rescan.elapsed() >= POD_RESCAN
            {
                self.names.pods.refresh();
                self.last_rescan = Instant::now();
                event.set_pod(self.names.pods.name(netns));
            }
            if let Event::Port(p) = &mut event {
                self.port_context.fill(p, &self.names.pods);
            }
            out(event);
        }
        if let Some(live) = &mut self.bursts {
            for b in live.ready(final_poll, &self.names.clock) {
                out(Event::Burst(b));
            }
        }
        if let Some(s) = &mut self.on_squeeze {
            match s.step(&mut self._ebpf) {
                Ok(note) => self.notes.extend(note),
                Err(e) => self.notes.push(format!("softnet: per-run hooks: {e}")),
            }
        }
        if final_poll || self.poller.due() {
            // Once a second: pods started since are named, polled and, with bursts, binned.
            self.names.pods.refresh();
            self.check_runtime();
            self.forget_gone();
            self.last_rescan = Instant::now();
            self.reselect();
            let single = self.single_pod();
            if let Some(live) = &mut self.bursts {
                // A failure leaves the interfaces binned so far; the next poll tries again.
                if let Ok(scope) = Scope::of(single.as_ref(), &self.names.pods) {
                    let _ = live.rescope(scope);
                }
            }
            let namespaces = namespaces(&self.names.pods, &self.selection, &self.selected);
            for event in self.poller.events(&namespaces, &self.names) {
                out(event);
            }
        }
    }

    /// The exact counters of the families that attached. Per CPU, softnet's runs, packets and
    /// busy time come from its run hooks while attached; its squeezes from them, or from
    /// softnet_stat when the hooks follow squeezes.
    pub fn rows(&self) -> Result<Rows, Error> {
        let mut rows = self.counts.rows(&self.names)?;
        if let Some(s) = &self.on_squeeze {
            let squeezes = s.squeezes();
            for c in &mut rows.softnet {
                c.squeezes = squeezes.get(&c.cpu).copied().unwrap_or(0);
            }
        }
        Ok(rows)
    }

    /// The linklocal family's settings, when it runs.
    pub fn linklocal(&self) -> Option<&linklocal::Settings> {
        self.linklocal.as_ref()
    }

    /// Starts binning the interface `only` (or every one but loopback) of the pod (or of this
    /// node's netns) in `directions`, with per-bin rate histograms if asked. The bursts family
    /// must be attached.
    fn start_bursts(&mut self, b: &BurstsConfig) -> Result<(), Error> {
        let scope = Scope::of(self.single_pod().as_ref(), &self.names.pods)?;
        let watched = scope.select(b.interface.as_deref(), &b.directions)?;
        let bins = PerCpuArray::try_from(take(&mut self._ebpf, bursts::BINS_MAP)?)?;
        let config = Array::try_from(take(&mut self._ebpf, bursts::CONFIG_MAP)?)?;
        let reader = BinReader::new(bins, config, scope.netns, b.bin_ns, watched)?;
        let every_interface = b.interface.is_none().then(|| b.directions.clone());
        let gap_bins = b.merge_gap_ns.div_ceil(b.bin_ns);
        let live =
            Live::start(reader, b.threshold, scope, every_interface, b.histograms, gap_bins)?;
        self.bursts = Some(live);
        Ok(())
    }

    /// The bins of the bursts family, when it runs.
    pub fn bursts(&self) -> Option<&Live> {
        self.bursts.as_ref()
    }

    /// The samples' ring buffer, which the kernel makes readable once it is a quarter full.
    pub fn samples_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.samples)
    }

    /// How the softnet family's per-run hooks run, when it runs.
    pub fn softnet_runs(&self) -> Option<RunHooks> {
        let softnet = self.attached.iter().any(|(f, _)| *f == Family::Softnet);
        let mode = if self.on_squeeze.is_some() { RunHooks::OnSqueeze } else { RunHooks::Always };
        softnet.then_some(mode)
    }

    pub fn health(&self) -> Result<Health, Error> {
        let sum = |i| -> Result<u64, Error> { Ok(self.stats.get(&i, 0)?.iter().sum()) };
        let mut skipped_invocations = 0;
        for name in self.attached.iter().flat_map(|(_, a)| a.programs.iter()) {
            let program =
                self._ebpf.program(name).ok_or_else(|| Error::Object(format!("program {name}")))?;
            let fd = program.fd().map_err(|e| Error::Tier(ebpf::describe(&e)))?;
            skipped_invocations += crate::health::recursion_misses(std::os::fd::AsFd::as_fd(fd))?;
        }
        Ok(Health {
            lost_samples: sum(stats::LOST_SAMPLES)?,
            counter_overflow: sum(stats::COUNTER_MAP_FULL)?,
            read_errors: sum(stats::READ_ERRORS)?,
            skipped_invocations,
        })
    }

    /// Deletes the count keys of namespaces gone for `forget_after`: dead pods' keys would
    /// otherwise pile up until a map is full (COUNTER_MAP_FULL).
    fn forget_gone(&mut self) {
        let live: BTreeSet<u32> = self.names.pods.pods().map(|p| p.netns).collect();
        let counted = self.counts.netns();
        let now = Instant::now();
        // 0 is "no netns": packets the kernel freed before they had one.
        for netns in counted.difference(&live).filter(|n| **n != 0) {
            let since = *self.gone_since.entry(*netns).or_insert(now);
            if now.duration_since(since) < self.forget_after {
                continue;
            }
            self.counts.forget(*netns);
        }
        self.gone_since.retain(|n, _| counted.contains(n) && !live.contains(n));
    }

    /// Says once when the container runtime stops or starts answering.
    fn check_runtime(&mut self) {
        let Some(rt) = self.names.pods.runtime() else { return };
        let (answers, error) =
            rt.status(|s| (s.error.is_none() && s.runtime.is_some(), s.error.clone()));
        if self.runtime_answers == Some(answers) {
            return;
        }
        let socket = rt.socket.display();
        let note = match (self.runtime_answers, answers) {
            (None, false) => format!(
                "the container runtime at {socket} does not answer ({}): pods are named by their \
                 network namespaces",
                error.unwrap_or_default()
            ),
            (Some(true), false) => format!(
                "the container runtime at {socket} went away ({}); counting goes on, pods keep \
                 the names it gave",
                error.unwrap_or_default()
            ),
            (Some(false), true) => format!("the container runtime at {socket} answers again"),
            _ => String::new(),
        };
        if !note.is_empty() {
            self.notes.push(note);
        }
        self.runtime_answers = Some(answers);
    }

    /// What the agent has to say since the last call (the runtime went away, ...).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    pub fn attached(&self) -> &[(Family, Attached)] {
        &self.attached
    }

    pub fn unavailable(&self) -> &[FamilyUnavailable] {
        &self.unavailable
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The pods as they are now: names for the pods that started since the last refresh.
    pub fn refresh_pods(&mut self) {
        self.names.pods.refresh();
    }

    /// What the agent looks at, as users asked for it.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The netns the selection matches now (every pod's when it selects all).
    pub fn selected(&self) -> Option<&BTreeSet<u32>> {
        (!self.selection.is_all()).then_some(&self.selected)
    }

    /// The one pod (name, netns) the selection matches, if it matches exactly one: its
    /// interfaces are what bursts bins.
    pub fn single_pod(&self) -> Option<(String, u32)> {
        let only = self.selected()?;
        let netns = *only.first().filter(|_| only.len() == 1)?;
        Some((self.names.pods.name(netns), netns))
    }

    /// Pods that started since and match join the selection; the kernel filter follows.
    fn reselect(&mut self) {
        if self.selection.is_all() {
            return;
        }
        let now = self.selection.netns(&self.names.pods);
        if now != self.selected {
            // A failed update leaves the old set; the next refresh tries again.
            if sync_selected(&mut self.selected_map, &self.selected, &now).is_ok() {
                self.selected = now;
            }
        }
    }

    /// Every pod's own kernel counters at the last poll.
    pub fn pod_counters(&self) -> &std::collections::HashMap<u32, crate::kstat::NetnsCounters> {
        self.poller.counters()
    }

    /// "drops via tp_btf, tcp via tp_btf", for status lines.
    pub fn describe(&self) -> String {
        let on_squeeze = |f: &Family| {
            if *f == Family::Softnet && self.on_squeeze.is_some() {
                " (per-run hooks on squeeze)"
            } else {
                ""
            }
        };
        let parts: Vec<String> = self
            .attached
            .iter()
            .map(|(f, a)| format!("{} via {}{}", f.name(), a.tier, on_squeeze(f)))
            .collect();
        parts.join(", ")
    }
}

/// Counts of gone namespaces are kept this long by default (the agent's `--pod-grace`).
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The families that failed, as the report lists them, when `ran` others run; when none
/// runs, the one failure, or all of them.
fn unavailable(ran: usize, failed: Vec<(Family, Error)>) -> Result<Vec<FamilyUnavailable>, Error> {
    if ran == 0 {
        let mut errors: Vec<Error> = failed.into_iter().map(|(_, e)| e).collect();
        return Err(match errors.len() {
            1 => errors.remove(0),
            _ => Error::NoFamily(errors.iter().map(Error::to_string).collect()),
        });
    }
    Ok(failed
        .into_iter()
        .map(|(family, e)| FamilyUnavailable { family, why: e.to_string() })
        .collect())
}

/// The namespaces to poll: the selected pods', or every pod's.
fn namespaces(
    pods: &PodIndex,
    selection: &Selection,
    selected: &BTreeSet<u32>,
) -> Vec<(u32, PathBuf)> {
    pods.pods()
        .filter(|p| selection.is_all() || selected.contains(&p.netns))
        .map(|p| (p.netns, p.path.clone()))
        .collect()
}

/// Makes the kernel's SELECTED hold `now` instead of `before`.
fn sync_selected(
    map: &mut HashMap<MapData, u32, u8>,
    before: &BTreeSet<u32>,
    now: &BTreeSet<u32>,
) -> Result<(), Error> {
    for gone in before.difference(now) {
        map.remove(gone)?;
    }
    for new in now.difference(before) {
        map.insert(new, 1, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_tier(family: Family) -> (Family, Error) {
        let tried = vec!["tracepoint: skb:kfree_skb format has no field reason".to_owned()];
        (family, Error::NoTier { family: family.name(), tried })
    }

    #[test]
    fn a_family_that_cannot_run_leaves_the_others_running() {
        let u = unavailable(4, vec![no_tier(Family::Drops)]).unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].family, Family::Drops);
        assert!(u[0].why.contains("format has no field reason"), "{}", u[0].why);
        assert!(unavailable(5, Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn when_no_family_can_run_it_is_an_error() {
        let one = unavailable(0, vec![no_tier(Family::Drops)]).unwrap_err().to_string();
        assert!(one.starts_with("no tier of hook family `drops` works"), "{one}");
        let two = unavailable(0, vec![no_tier(Family::Drops), no_tier(Family::Tcp)]).unwrap_err();
        let two = two.to_string();
        assert!(two.starts_with("no hook family asked for can run"), "{two}");
        assert!(two.contains("`drops`") && two.contains("`tcp`"), "{two}");
    }
}
