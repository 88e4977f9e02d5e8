//! docs/benchmarks.md from one run of the bench: the machine and traffic, the throughput of
//! each mode against the no-agent runs around it, the per-program pass, the event runs, and
//! which targets are met.

use std::{fmt::Write as _, fs, thread};

use anyhow::Result;
use netprobe::Family;

use super::{
    events::EventRun,
    median,
    stats::{PerProgram, Program},
    Hooks, Mode, Options, Runs, BPFTRACE, EVERY_FAMILY,
};

pub struct Doc<'a> {
    pub options: Options,
    pub hooks: &'a Hooks,
    pub none: &'a [f64],
    pub runs_per_datagram: &'a [f64],
    pub runs: &'a [Runs],
    pub programs: &'a PerProgram,
    pub events: &'a [EventRun],
    pub overload: &'a EventRun,
    pub watch: f64,
}

/// The middle half of the rounds: (25th, 75th percentile).
fn quartiles(v: &[f64]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.75))
}

/// Half the interquartile range: how far a round's figure typically strays.
pub fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = quartiles(v);
    (hi - lo) / 2.0
}

fn verdict(ok: bool, resolved: bool) -> &'static str {
    match (ok, resolved) {
        (true, _) => "met",
        (false, true) => "**missed**",
        (false, false) => "**missed** (within the spread: rerun with more rounds)",
    }
}

impl Doc<'_> {
    fn mode(&self, m: Mode) -> &Runs {
        &self.runs[Mode::MEASURED.iter().position(|x| *x == m).expect("a measured mode")]
    }

    pub fn render(&self) -> Result<String> {
        let mut s = String::new();
        let o = &self.options;
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")?;
        let cpu = fs::read_to_string("/proc/cpuinfo")?
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let ncpu = thread::available_parallelism()?.get();
        let tiers: Vec<String> =
            self.hooks.tiers.iter().map(|(f, t)| format!("{} {t}", f.name())).collect();
        writeln!(s, "# netprobe benchmarks\n")?;
        writeln!(
            s,
            "Written by `cargo xtask bench --rounds {} --secs {}` in one run: {ncpu} vCPUs \
             ({cpu}), kernel {}.\nTiers here: {}.\n",
            o.rounds,
            o.secs,
            kernel.trim(),
            tiers.join(", ")
        )?;
        writeln!(
            s,
            "Traffic: `labtool blast-for` (tests/src/bin/labtool.rs) sends 18-byte UDP payloads \
             (64-byte frames) from\npod-a, pinned to CPU 0, over a veth pair and a bridge into a \
             socket in pod-b, unpaced, {} s per run.\nEach datagram took {:.2} NET_RX softirq \
             runs (median over the no-agent runs, /proc/softirqs), of at most 2: it is\n\
             received twice (the host-side veth, then pod-b's eth0), and a run per datagram and \
             hop is the worst case\nfor per-run hooks.\n",
            o.secs,
            median(self.runs_per_datagram)
        )?;
        writeln!(
            s,
            "Each mode runs between two no-agent runs; its ratio is its throughput over the mean \
             of those two, per\nround. {} rounds interleave the modes, so drift on a shared \
             machine hits every mode alike. Figures\nare medians over the rounds; the spread is \
             half the interquartile range of the per-round figures. A\ndifference counts only \
             when it is larger than the spread.\n",
            o.rounds
        )?;

        writeln!(s, "## Throughput, 64-byte UDP\n")?;
        writeln!(
            s,
            "| mode | pps | ratio to no agent | spread | ns/packet added | above its floor | its process's CPU |"
        )?;
        writeln!(s, "|---|---|---|---|---|---|---|")?;
        writeln!(
            s,
            "| {} | {:.0} | 1 | {:.3} | - | - | - |",
            Mode::None.name(),
            median(self.none),
            spread(&self.none.iter().map(|p| p / median(self.none)).collect::<Vec<_>>())
        )?;
        for m in Mode::MEASURED {
            let r = self.mode(m);
            let above = match m {
                Mode::Default => {
                    format!("{:.0}", self.above_floor(Mode::Default, Mode::FloorDefault))
                }
                Mode::Every => format!("{:.0}", self.above_floor(Mode::Every, Mode::FloorEvery)),
                _ => "-".into(),
            };
            let cpu = if r.cpu.is_empty() {
                "-".into()
            } else {
                format!("{:.1}% of a vCPU", 100.0 * median(&r.cpu))
            };
            writeln!(
                s,
                "| {} | {:.0} | {:.3} | {:.3} | {:.0} | {above} | {cpu} |",
                m.name(),
                median(&r.pps),
                median(&r.ratios()),
                spread(&r.ratios()),
                median(&r.added_ns())
            )?;
        }
        writeln!(
            s,
            "\nThe last column is the agent's own process during the traffic (user and system \
             time, its BPF programs not\nincluded: they run in the senders' and softirqs' \
             time). Both vCPUs are busy with the traffic (the sender on\nCPU 0, the veth's \
             softirqs and the receiver), so CPU the agent's process takes comes out of the \
             traffic's.\n\nThe reference row runs no BPF at all: `labtool read-every`, a \
             process that reads two /proc files ten\ntimes a second and sleeps. What it costs \
             is what periodic userspace alone costs this traffic on this machine,\nthe limit \
             below which no agent that wakes that often can go. netprobe drains once a second \
             unless it streams\n(watch) or bins bursts, and the kernel wakes it sooner only \
             once its ring buffer is a quarter full."
        )?;
        let softnet_attached: Vec<&String> =
            [Mode::Default, Mode::Agent].iter().flat_map(|m| &self.mode(*m).notes).collect();
        writeln!(
            s,
            "\nThe default families are those `netprobe report` and `netprobe agent` attach \
             without `--events`: drops\n(skb:kfree_skb, which fires only on drops), tcp, ports \
             and conntrack on their tracepoints, and softnet,\nwhose squeezes come from \
             /proc/net/softnet_stat and whose per-run hooks attach only while a CPU's\n\
             time_squeeze grows (`netprobe doctor` says so). {}\n",
            if softnet_attached.is_empty() {
                "In these runs no CPU squeezed and softnet's per-run hooks never attached."
                    .to_owned()
            } else {
                format!("In these runs they attached: {softnet_attached:?}.")
            }
        )?;
        writeln!(
            s,
            "The floors are empty programs (`r0 = 0; exit`) of the same program types on the same \
             hooks, assembled and\nloaded by the bench (xtask/src/bench/floor.rs): for the \
             default families {} hooks, for every family\n({EVERY_FAMILY}) {}. Every family \
             includes softnet's per-run hooks, always attached, and bursts, which\nhooks every \
             packet received and sent. bpftrace runs this script, on classic tracepoints:\n",
            self.hooks.default.len(),
            self.hooks.every.len()
        )?;
        writeln!(s, "```{BPFTRACE}```\n")?;

        self.programs_section(&mut s)?;
        self.events_section(&mut s)?;
        self.targets(&mut s)?;
        Ok(s)
    }

    /// Median over rounds of a netprobe mode's ns/packet minus its floor's, round by round.
    fn above_floor(&self, m: Mode, floor: Mode) -> f64 {
        let (a, f) = (self.mode(m).added_ns(), self.mode(floor).added_ns());
        median(&a.iter().zip(&f).map(|(a, f)| a - f).collect::<Vec<_>>())
    }

    fn programs_section(&self, s: &mut String) -> Result<()> {
        writeln!(
            s,
            "## Per program (bpf_stats)\n\nA pass of its own with kernel.bpf_stats_enabled=1 \
             (restored after): one UDP run with every family, one with\nevery family's floor. \
             Run time is what the kernel accounts inside each program, per delivered datagram;\n\
             it leaves out the dispatch to the program, which the throughput floor above \
             includes.\n"
        )?;
        writeln!(s, "| family | runs per packet | netprobe ns/packet | floor ns/packet | netprobe above floor |")?;
        writeln!(s, "|---|---|---|---|---|")?;
        for (f, np, floor, runs) in self.programs.by_family() {
            if runs == 0.0 && np == 0.0 {
                continue;
            }
            writeln!(s, "| {} | {runs:.2} | {np:.0} | {floor:.0} | {:.0} |", f.name(), np - floor)?;
        }
        // Per run, since drops fire on few packets.
        let per_run = |ps: &[Program]| {
            ps.iter()
                .find(|p| p.family == Family::Drops && p.runs_per_packet > 0.0)
                .map(|p| p.ns_per_packet / p.runs_per_packet)
        };
        let (count, sample, floor) = (
            per_run(&self.programs.netprobe),
            per_run(&self.programs.sampling_drops),
            per_run(&self.programs.floor),
        );
        if let (Some(count), Some(sample), Some(floor)) = (count, sample, floor) {
            writeln!(
                s,
                "\nPer drop: drops takes {count:.0} ns where it only counts (report, record, the \
                 agent), {sample:.0} ns under\n`watch`, which samples each drop as well (flow, \
                 location and time through the ring buffer); its floor, {floor:.0} ns.",
            )?;
        }
        writeln!(s, "\n| program | family | runs per packet | ns per packet |")?;
        writeln!(s, "|---|---|---|---|")?;
        for p in self.programs.netprobe.iter().filter(|p| p.runs_per_packet > 0.0) {
            writeln!(
                s,
                "| {} | {} | {:.2} | {:.0} |",
                p.name,
                p.family.name(),
                p.runs_per_packet,
                p.ns_per_packet
            )?;
        }
        Ok(())
    }

    fn events_section(&self, s: &mut String) -> Result<()> {
        writeln!(
            s,
            "\n## Drop events\n\nUDP to a closed port in pod-b: one NO_SOCKET drop per datagram, \
             under `netprobe report --events drops\n--pod pod-b`, which counts drops without \
             sampling them, and beside it `netprobe watch` of the same, which\nsamples every one: \
             delivered and lost are watch's, the exact count, CPU and RSS the report's.\n\
             Generated is the kernel's own count, the growth of pod-b's `Udp NoPorts`. The \
             overload row stops\nboth (SIGSTOP) for the whole unpaced run, as a starved node \
             would, so watch's ring buffer (4 MiB)\noverflows, then lets them go.\n"
        )?;
        writeln!(s, "| offered (events/s) | generated (Udp NoPorts) | report's exact count | watch's delivered | watch's lost | counted = generated = delivered + lost | report's CPU | its CPU per 100k events/s | its peak RSS |")?;
        writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
        let overload =
            std::iter::once(("unpaced, netprobe stopped (overload)".to_owned(), self.overload));
        let paced =
            self.events.iter().map(|e| (e.rate.map_or("unpaced".into(), |r| r.to_string()), e));
        for (rate, e) in paced.chain(overload) {
            writeln!(
                s,
                "| {rate} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% | {:.1} MB |",
                e.generated,
                e.counted,
                e.delivered,
                e.lost,
                if e.balanced() { "yes" } else { "NO" },
                e.cpu_fraction() * 100.0,
                e.cpu_per_100k() * 100.0,
                e.rss_kb as f64 / 1024.0
            )?;
        }
        writeln!(
            s,
            "\n`netprobe watch --events drops --pod pod-b --format json > /dev/null`, which decodes \
             and prints every\nsample, at 100k events/s offered: {:.1}% of a vCPU per 100k \
             events/s.",
            self.watch * 100.0
        )?;
        Ok(())
    }

    /// What the 3× target leaves for netprobe's own work once the floor is paid.
    fn bpftrace_budget(&self, s: &mut String) -> Result<()> {
        let bpftrace = 1.0 - median(&self.mode(Mode::Bpftrace).ratios());
        let none_ns = 1e9 / median(self.none);
        let allowed = none_ns / (1.0 - bpftrace / 3.0) - none_ns;
        let floor = median(&self.mode(Mode::FloorEvery).added_ns());
        let own = self.above_floor(Mode::Every, Mode::FloorEvery);
        let families = self.programs.by_family();
        let runs: f64 = families.iter().map(|x| x.3).sum();
        let per_run: Vec<String> = families
            .iter()
            .filter(|(_, _, _, r)| *r >= 1.0)
            .filter_map(|(f, ..)| {
                Some(format!("{} {:.0} ns", f.name(), self.programs.own_per_run(*f)?))
            })
            .collect();
        let left = allowed - floor;
        writeln!(
            s,
            "\nWhat 3× less loss than bpftrace asks of every family here: bpftrace loses {:.1}%, so \
             netprobe may lose\n{:.1}%, {allowed:.0} ns per packet. The empty programs on its hooks \
             already take {floor:.0} ns of that, which leaves\n{left:.0} ns per packet for all of \
             netprobe's own work: {:.0} ns for each of the {runs:.1} hook runs per packet.\n\
             netprobe takes {own:.0} ns above its floor, within the 1.5× of the floor the other \
             target allows; its programs'\nown work per run (bpf_stats, above their floor) is {}; 3× needs it at {:.0} \
             ns.",
            bpftrace * 100.0,
            bpftrace * 100.0 / 3.0,
            left / runs,
            per_run.join(", "),
            left / runs
        )?;
        Ok(())
    }

    fn targets(&self, s: &mut String) -> Result<()> {
        writeln!(s, "\n## Targets (issue 14)\n")?;
        writeln!(s, "| target | measured | |")?;
        writeln!(s, "|---|---|---|")?;
        let default = self.mode(Mode::Default).ratios();
        let (r, sp) = (median(&default), spread(&default));
        writeln!(
            s,
            "| default families ≥ 0.98 of no agent | {r:.3} ± {sp:.3} | {} |",
            verdict(r >= 0.98, 0.98 - r > sp)
        )?;
        let stopped = self.mode(Mode::DefaultStopped).ratios();
        let (rs, sps) = (median(&stopped), spread(&stopped));
        writeln!(
            s,
            "| the same, netprobe's process stopped during the traffic (its BPF programs alone) | \
             {rs:.3} ± {sps:.3} | {} |",
            verdict(rs >= 0.98, 0.98 - rs > sps)
        )?;
        for (m, floor) in [(Mode::Default, Mode::FloorDefault), (Mode::Every, Mode::FloorEvery)] {
            let own = self.above_floor(m, floor);
            let bare = median(&self.mode(floor).added_ns());
            let sp = spread(&self.mode(m).added_ns()).max(spread(&self.mode(floor).added_ns()));
            writeln!(
                s,
                "| {}: netprobe's own work ≤ 1.5× its floor | {own:.0} ns/packet above a floor of \
                 {bare:.0} ns/packet (± {sp:.0}) | {} |",
                m.name(),
                verdict(own <= 1.5 * bare.max(0.0), own - 1.5 * bare > sp)
            )?;
        }
        // The throughput floor of every family, shared by hook invocations: per run.
        let total_runs: f64 = self.programs.by_family().iter().map(|x| x.3).sum();
        let bare = median(&self.mode(Mode::FloorEvery).added_ns()) / total_runs;
        for (f, ..) in self.programs.by_family() {
            // Hooks that (nearly) did not fire in this traffic cost it nothing.
            let Some(own) = self.programs.own_per_run(f) else { continue };
            writeln!(
                s,
                "| {}: own work ≤ 1.5× its hooks' share of the floor (bpf_stats) | {own:.0} ns vs \
                 {bare:.0} ns per run | {} |",
                f.name(),
                verdict(own <= 1.5 * bare, true)
            )?;
        }
        let every = self.mode(Mode::Every).ratios();
        let (loss, sp) = (1.0 - median(&every), spread(&every));
        let bpftrace = 1.0 - median(&self.mode(Mode::Bpftrace).ratios());
        // A loss within the spread is no loss to divide by.
        let (measured, ok) = if loss > sp {
            let times = bpftrace / loss;
            (
                format!(
                    "bpftrace loses {:.1}%, netprobe {:.1}%: {times:.1}×",
                    bpftrace * 100.0,
                    loss * 100.0
                ),
                times >= 3.0,
            )
        } else {
            (
                format!(
                    "bpftrace loses {:.1}%, netprobe {:.1}%, within its spread of {:.1}%",
                    bpftrace * 100.0,
                    loss * 100.0,
                    sp * 100.0
                ),
                bpftrace >= 3.0 * sp,
            )
        };
        writeln!(
            s,
            "| ≥ 3× less throughput loss than bpftrace (every family) | {measured} | {} |",
            verdict(ok, true)
        )?;
        writeln!(
            s,
            "| `watch --format json` ≤ 5% of a vCPU per 100k events/s | {:.1}%: {:.0} ns of CPU \
             per event, against 500 | {} |",
            self.watch * 100.0,
            self.watch * 1e4,
            verdict(self.watch <= 0.05, true)
        )?;
        let o = self.overload;
        writeln!(
            s,
            "| overload (watch): lost > 0, delivered + lost = generated, exact count = generated | lost \
             {}, {} + {} = {} generated, counted {} | {} |",
            o.lost,
            o.delivered,
            o.lost,
            o.generated,
            o.counted,
            verdict(o.lost > 0 && o.balanced(), true)
        )?;
        let agent = self.mode(Mode::Agent).ratios();
        writeln!(
            s,
            "| agent (default families) ≥ 0.98 of no agent | {:.3} ± {:.3} | {} |",
            median(&agent),
            spread(&agent),
            verdict(median(&agent) >= 0.98, 0.98 - median(&agent) > spread(&agent))
        )?;
        let cpu = median(&self.mode(Mode::Default).cpu);
        writeln!(
            s,
            "\nWhere the default families' loss is: with netprobe's process stopped for the \
             traffic, its programs still\nattached, throughput is {:.3} of no agent (the bare \
             hooks' floor: {:.3}); running, {:.3}. The hooks are\nnot the cost: the process's \
             wakeups are, though it took {:.1}% of a vCPU during the traffic. On this\nmachine \
             periodic userspace costs the saturated sender more than its own CPU time: the \
             reference process,\nwhich only reads two /proc files every 100 ms, gives {:.3}. \
             That is the limit for anything that runs\nbeside the traffic here, and why \
             netprobe drains once a second (see above), on a timerfd that wakes it once\n\
             (tokio's timer woke it once more before each deadline); draining every 100 ms, as \
             it did before,\ncost 6.2% against 1.6% once a second (6 rounds by hand, the \
             receiver pinned).",
            median(&stopped),
            median(&self.mode(Mode::FloorDefault).ratios()),
            median(&default),
            100.0 * cpu,
            median(&self.mode(Mode::ProcReader).ratios())
        )?;
        let agent_cpu = median(&self.mode(Mode::Agent).cpu);
        writeln!(
            s,
            "\nThe agent attaches the same families and polls every pod once a second as \
             `report` does; its process\ntook {:.1}% of a vCPU during the traffic against \
             report's {:.1}%, and its ratio is {:.3} ± {:.3} against\nreport's {:.3} ± {:.3}. \
             `cargo xtask bench --only agent --rounds N` measures the two alone, for a\n\
             difference smaller than these spreads.",
            100.0 * agent_cpu,
            100.0 * cpu,
            median(&agent),
            spread(&agent),
            median(&default),
            spread(&default)
        )?;
        self.bpftrace_budget(s)?;
        writeln!(
            s,
            "\nThe agent's CPU at idle and per 100k events/s, its RSS over a soak and its scrape \
             time are in\ndocs/agent.md (`cargo xtask agent-cost`)."
        )?;
        Ok(())
    }
}
