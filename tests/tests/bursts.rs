//! Microburst detection (incidents 01 and 02) against bursts we inject ourselves, bin totals
//! against the interfaces' own rx_packets and tx_packets, and host-side veths named by pod.

mod common;

use std::{thread, time::Duration};

use common::require_root;
use netprobe_tests::{
    incidents::labtool,
    lab::{host_veth, Lab},
    netprobe::{self, Running},
};
use serde_json::Value;

const BIN_NS: u64 = 1_000_000;

/// An interface counter: in a pod (`/sys` as `ip netns exec` mounts it), or on the node.
struct Counter {
    pod: Option<String>,
    path: String,
}

impl Counter {
    fn read(&self, lab: &Lab) -> anyhow::Result<u64> {
        let text = match &self.pod {
            Some(pod) => lab.sh_ok(pod, &format!("cat {}", self.path))?,
            None => std::fs::read_to_string(&self.path)?,
        };
        Ok(text.trim().parse()?)
    }
}

fn stat(pod: Option<&str>, iface: &str, name: &str) -> Counter {
    Counter {
        pod: pod.map(str::to_owned),
        path: format!("/sys/class/net/{iface}/statistics/{name}"),
    }
}

struct Run {
    out: Value,
    /// When each injected burst's first datagram was sent.
    injected: Vec<u64>,
    /// The counter's growth while the pulses ran, and over netprobe's whole run.
    grown: (u64, u64),
    /// How long the pulses ran: a burst every 200 ms after the first 200 ms.
    secs: u32,
}

/// Runs `netprobe bursts ARGS --threshold 50kpps` around a pulses run from pod-a to pod-b:
/// smooth 2000 pps plus `burst` datagrams back to back every 200 ms.
fn run(args: &[&str], counter: Counter, secs: u32, burst: u32) -> anyhow::Result<Run> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    run_in(&lab, args, counter, secs, burst, lab.ip("pod-b"))
}

/// [`run`] in `lab`, the pulses to `to` (an address of pod-b's).
fn run_in(
    lab: &Lab,
    args: &[&str],
    counter: Counter,
    secs: u32,
    burst: u32,
    to: std::net::Ipv4Addr,
) -> anyhow::Result<Run> {
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    lab.wait_listening("pod-b", 9000, true)?;
    let duration = format!("{}s", secs + 3);
    let mut full = vec!["bursts", "--threshold", "50kpps", "--duration", &duration];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--format", "json"]);
    // The counter is read four times: before netprobe starts, once it is attached, 200 ms
    // after the pulses, and after netprobe has ended. Every packet binned lies between the
    // outer reads, and every packet between the inner ones is binned (the lab's own neighbour
    // and multicast chatter may fall either side of a read).
    let c0 = counter.read(lab)?;
    let np = start(&full)?;
    let c1 = counter.read(lab)?;
    let starts = lab.sh_ok("pod-a", &pulses(to, secs, burst))?;
    thread::sleep(Duration::from_millis(200));
    let c2 = counter.read(lab)?;
    let out: Value = serde_json::from_str(&np.wait()?)?;
    let grown = (c2 - c1, counter.read(lab)? - c0);
    common::docs::check_bursts(&out);
    Ok(Run { out, injected: serde_json::from_str(&starts)?, grown, secs })
}

/// netprobe at the highest nice priority, like the sender below: a sender that starves the
/// reader would have its bins overwritten before they are read.
fn start(args: &[&str]) -> anyhow::Result<Running> {
    let bin = netprobe::bin();
    let mut full = vec!["-n", "-20", bin.to_str().expect("UTF-8 path")];
    full.extend_from_slice(args);
    Running::start_bin(std::path::Path::new("nice"), &full)
}

/// Smooth 2000 pps to pod-b plus `burst` datagrams back to back every 200 ms, at the highest
/// nice priority: on a busy machine a preempted sender splits or delays its own bursts.
fn pulses(to: std::net::Ipv4Addr, secs: u32, burst: u32) -> String {
    format!("nice -n -20 {} pulses {to} 9000 {secs} 2000 {burst} 200", labtool())
}

/// The packets binned, between the counter's growth while the pulses ran and over the run.
fn assert_binned(packets: &Value, (inner, outer): (u64, u64)) {
    let binned = packets.as_u64().expect("packets");
    assert!((inner..=outer).contains(&binned), "{binned} binned, counter grew {inner}..{outer}");
    // The lab's own chatter is a few packets, not a share of the traffic.
    assert!(outer - inner <= 20, "{inner}..{outer}");
}

fn interface<'a>(out: &'a Value, name: &str, direction: &str) -> &'a Value {
    let all = out["interfaces"].as_array().unwrap();
    all.iter().find(|i| i["name"] == name && i["direction"] == direction).unwrap_or_else(|| {
        panic!("no {name} {direction} in {all:?}");
    })
}

fn bursts<'a>(out: &'a Value, name: &str, direction: &str) -> Vec<&'a Value> {
    let all = out["bursts"].as_array().unwrap();
    all.iter().filter(|b| b["interface"] == name && b["direction"] == direction).collect()
}

/// Every injected burst but at most one found within a bin of its start, nothing reported
/// that was not injected, each burst's packets, duration and peak as injected, and about one
/// kernel record per burst and CPU.
fn check_detection(r: &Run, found: &[&Value], what: &str) {
    let start_of = |b: &Value| b["start_ns"].as_u64().expect("start_ns");
    let first_bin = |t: u64| t / BIN_NS * BIN_NS;
    // Each reported burst belongs to the injected burst it starts at: from a bin before its
    // first datagram to 10 ms after. A sender preempted in the middle of its 300 datagrams (a
    // busy machine) sends them in two runs, two bursts on the wire; no burst may start
    // anywhere else.
    let mut groups: Vec<Vec<&Value>> = vec![Vec::new(); r.injected.len()];
    for b in found {
        let s = start_of(b);
        let owner = r
            .injected
            .iter()
            .rposition(|&t| s + BIN_NS >= first_bin(t) && s <= first_bin(t) + 10 * BIN_NS);
        let i = owner.unwrap_or_else(|| panic!("{what}: a burst nobody injected: {b}"));
        groups[i].push(b);
    }
    let hit = r
        .injected
        .iter()
        .zip(&groups)
        .filter(|(t, g)| g.iter().any(|b| start_of(b).abs_diff(first_bin(**t)) <= BIN_NS))
        .count();
    let split = groups.iter().filter(|g| g.len() > 1).count();
    println!(
        "{what}: {} injected, {hit} found within a bin of their start, {} reported ({split}          injected bursts in more than one piece), {} kernel records",
        r.injected.len(),
        found.len(),
        r.out["kernel_records"]
    );
    let expected = 5 * r.secs as usize - 1;
    assert!((expected..=expected + 1).contains(&r.injected.len()), "{:?}", r.injected);
    // One may start late: the sender takes its time stamp, then can be preempted before its
    // first datagram (seen in CI: one of 49 found 2 ms after its stamp, whole, not split).
    assert!(
        hit + 1 >= r.injected.len(),
        "found {hit} of {}: {:?} vs {:?}",
        r.injected.len(),
        found.iter().map(|b| start_of(b)).collect::<Vec<_>>(),
        r.injected
    );
    for g in groups.iter().filter(|g| !g.is_empty()) {
        check_burst(g);
    }
    check_kernel_records(r.injected.len(), found.len(), &r.out);
}

/// The bursts each injected one was found as, in one piece or more, added up.
fn check_bursts(found: &[&Value]) {
    for b in found {
        check_burst(&[b]);
    }
}

/// One injected burst of 300 datagrams on top of the smooth 2 a bin, found as `pieces`: their
/// packets, duration and peak together agree with that.
fn check_burst(pieces: &[&Value]) {
    let sum = |f: &str| -> f64 { pieces.iter().map(|b| b[f].as_f64().expect(f)).sum() };
    let packets = sum("packets") as u64;
    let bins = (sum("duration_us") / 1000.0).round() as u64;
    let peak = pieces.iter().map(|b| b["peak_pps"].as_f64().expect("peak_pps")).fold(0.0, f64::max);
    // The bins hold the 300 and the smooth traffic's 2 a bin (a few more when the sender
    // catches up); an edge bin under the 50 a bin threshold (50kpps) is no part of a burst,
    // so at most 49 at each end of each piece may fall outside.
    let outside = 2 * 49 * pieces.len() as u64;
    assert!((300 - outside..=300 + 5 * bins).contains(&packets), "packets: {pieces:?}");
    // 300 at 50 a bin or more: one to six bins, and a sender's stall of up to the 5 ms merge
    // gap inside.
    assert!((1..=6 + 5).contains(&bins), "duration: {pieces:?}");
    // The busiest bin: at least the threshold and the average, at most all of it.
    let avg = packets as f64 * 1000.0 / bins as f64;
    assert!(peak >= 50_000.0 && peak >= avg && peak <= packets as f64 * 1000.0, "peak: {pieces:?}");
}

/// About one kernel summary per burst and CPU it touched; the last may still be open at the
/// end, and read from the bins. A burst whose sender stalled (within the merge gap) is one
/// burst of a few records per CPU.
fn check_kernel_records(injected: usize, reported: usize, out: &Value) {
    let ncpu = std::thread::available_parallelism().unwrap().get();
    let records = out["kernel_records"].as_u64().expect("kernel_records") as usize;
    assert!(
        (injected.saturating_sub(1)..=3 * reported * ncpu).contains(&records),
        "{records} kernel records for {reported} bursts on {ncpu} CPUs"
    );
}

#[test]
fn injected_bursts_are_found_where_they_start() -> anyhow::Result<()> {
    let r = run(&["--pod", "pod-b"], stat(Some("pod-b"), "eth0", "rx_packets"), 10, 300)?;
    check_detection(&r, &bursts(&r.out, "eth0", "rx"), "rx bursts");
    let eth0 = interface(&r.out, "eth0", "rx");
    println!("eth0 rx: {} packets in bins, rx_packets grew {:?}", eth0["packets"], r.grown);
    // The bins cover from before the first packet to after the last.
    assert_binned(&eth0["packets"], r.grown);
    assert_eq!(r.out["missed_bins"], 0);
    Ok(())
}

#[test]
fn sent_packets_are_binned_and_their_bursts_found() -> anyhow::Result<()> {
    let args = ["--pod", "pod-a", "--direction", "tx"];
    let r = run(&args, stat(Some("pod-a"), "eth0", "tx_packets"), 10, 300)?;
    check_detection(&r, &bursts(&r.out, "eth0", "tx"), "tx bursts");
    let eth0 = interface(&r.out, "eth0", "tx");
    println!("eth0 tx: {} packets in bins, tx_packets grew {:?}", eth0["packets"], r.grown);
    assert_binned(&eth0["packets"], r.grown);
    let rx = r.out["interfaces"].as_array().unwrap().iter().any(|i| i["direction"] == "rx");
    assert!(!rx, "--direction tx bins no received packets");
    Ok(())
}

#[test]
fn interfaces_whose_ifindexes_share_a_slot_are_each_binned() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    // A second link from pod-a to pod-b, pod-b's end at eth0's ifindex plus 128 (SLOTS) and its
    // peer, before the move, at plus 256: three interfaces of pod-b's netns with one first
    // slot, as on a node whose ifindexes grew. The link's packets are found at a later probe.
    let eth0: u32 = lab.sh_ok("pod-b", "cat /sys/class/net/eth0/ifindex")?.trim().parse()?;
    lab.sh_ok(
        "pod-b",
        &format!(
            "ip link add name np-xa index {} type veth peer name np-xb index {} && \
             ip link set np-xb netns pod-a && \
             ip addr add 10.98.0.2/24 dev np-xa && ip link set np-xa up",
            eth0 + 128,
            eth0 + 256
        ),
    )?;
    lab.sh_ok("pod-a", "ip addr add 10.98.0.1/24 dev np-xb && ip link set np-xb up")?;
    let args = ["--pod", "pod-b", "--direction", "rx"];
    let r = run_in(
        &lab,
        &args,
        stat(Some("pod-b"), "np-xa", "rx_packets"),
        3,
        300,
        [10, 98, 0, 2].into(),
    )?;
    check_detection(&r, &bursts(&r.out, "np-xa", "rx"), "rx bursts at a later slot");
    let xa = interface(&r.out, "np-xa", "rx");
    println!("np-xa rx: {} packets in bins, rx_packets grew {:?}", xa["packets"], r.grown);
    assert_binned(&xa["packets"], r.grown);
    assert!(bursts(&r.out, "eth0", "rx").is_empty(), "np-xa's bursts are its own");
    Ok(())
}

#[test]
fn host_veths_are_named_by_their_pod() -> anyhow::Result<()> {
    // On the node, pod-b's host-side veth sends what pod-b receives.
    let veth = host_veth("pod-b");
    let r = run(&[], stat(None, &veth, "tx_packets"), 3, 300)?;
    let sent = interface(&r.out, &veth, "tx");
    println!("{veth} tx: {} packets in bins, tx_packets grew {:?}", sent["packets"], r.grown);
    assert_eq!(sent["pod"], "pod-b", "{sent}");
    assert_binned(&sent["packets"], r.grown);
    assert_eq!(interface(&r.out, &host_veth("pod-a"), "rx")["pod"], "pod-a");
    let pods = r.out["pods"].as_array().unwrap();
    let pod_b = pods.iter().find(|p| p["pod"] == "pod-b" && p["direction"] == "tx").unwrap();
    assert_eq!(pod_b["interfaces"], serde_json::json!([veth]), "{pod_b}");
    assert_eq!(pod_b["packets"], sent["packets"], "one interface: the pod's bins are its bins");
    let found = bursts(&r.out, &veth, "tx");
    println!("{veth} tx: {} bursts of {} injected", found.len(), r.injected.len());
    assert!(found.iter().all(|b| b["pod"] == "pod-b"), "{found:?}");
    check_detection(&r, &found, "host veth tx bursts");
    Ok(())
}

#[test]
fn smooth_traffic_makes_no_bursts() -> anyhow::Result<()> {
    // A "burst" of one datagram is no burst: the traffic stays at about 2000 pps.
    let r = run(&["--pod", "pod-b"], stat(Some("pod-b"), "eth0", "rx_packets"), 12, 1)?;
    let bins = interface(&r.out, "eth0", "rx")["bins"].as_u64().unwrap();
    let bursts = r.out["bursts"].as_array().unwrap().len() as u64;
    println!("smooth: {bursts} bursts in {bins} bins");
    assert!(bins >= 10_000, "{bins}");
    assert!(
        bursts * 10_000 <= bins,
        "at most one false positive per 10^4 bins: {bursts} in {bins}"
    );
    Ok(())
}

#[test]
fn watch_streams_bursts_as_events() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    lab.wait_listening("pod-b", 9000, true)?;
    let np = start(&["watch", "--pod", "pod-b", "--events", "bursts", "--format", "json"])?;
    // The default threshold is relative: it needs a second of quiet bins first.
    thread::sleep(Duration::from_millis(1200));
    let b = lab.ip("pod-b");
    let starts = lab.sh_ok("pod-a", &pulses(b, 3, 300))?;
    thread::sleep(Duration::from_millis(300));
    let out = np.stop()?;
    let injected: Vec<u64> = serde_json::from_str(&starts)?;
    let bursts: Vec<Value> = out
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|r| r["type"] == "burst")
        .collect();
    bursts.iter().for_each(common::docs::check_watch_record);
    println!("watch: {} bursts injected, {} burst events", injected.len(), bursts.len());
    assert_eq!(bursts.len(), injected.len(), "{bursts:?}");
    check_bursts(&bursts.iter().collect::<Vec<_>>());
    let all_eth0_rx = bursts
        .iter()
        .all(|b| b["pod"] == "pod-b" && b["interface"] == "eth0" && b["direction"] == "rx");
    assert!(all_eth0_rx, "{bursts:?}");
    Ok(())
}

#[test]
fn report_finds_microbursts_and_keeps_the_rates_per_pod() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    lab.wait_listening("pod-b", 9000, true)?;
    let args = ["report", "--duration", "10m", "--pod", "pod-b", "--events", "bursts"];
    let np = start(&[&args[..], &["--format", "json"]].concat())?;
    thread::sleep(Duration::from_millis(1200));
    let starts = lab.sh_ok("pod-a", &pulses(lab.ip("pod-b"), 3, 300))?;
    thread::sleep(Duration::from_millis(300));
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let injected: Vec<u64> = serde_json::from_str(&starts)?;
    let found = &report["findings"][0];
    println!(
        "report: {} injected, {} bursts; first finding {}",
        injected.len(),
        report["burst_count"],
        found["id"]
    );
    assert_eq!(found["id"], "microburst", "{report:#}");
    assert_eq!(found["pods"], serde_json::json!(["pod-b"]));
    assert_eq!(report["burst_count"].as_u64(), Some(injected.len() as u64));
    let rates = report["burst_rates"].as_array().unwrap();
    let rx = rates.iter().find(|r| r["pod"] == "pod-b" && r["direction"] == "rx").unwrap();
    // The smooth 2000 pps is 2 packets a bin; 300 back to back land in a few bins (one, on an
    // idle machine: 300 kpps), far above it either way.
    let pct = |p: &str| rx["rates"]["percentiles"][p].as_u64().unwrap();
    assert!(pct("p50") <= 10_000, "{rx}");
    assert!(pct("max") >= 10 * pct("p50").max(2000), "{rx}");
    Ok(())
}

#[test]
fn a_pod_started_after_netprobe_is_binned_too() -> anyhow::Result<()> {
    require_root();
    let mut lab = Lab::up(&["pod-a"])?;
    let np = start(&["report", "--duration", "10m", "--events", "bursts", "--format", "json"])?;
    lab.add("pod-b")?;
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    lab.wait_listening("pod-b", 9000, true)?;
    // A second for netprobe to find the new veth, a second of quiet bins for the relative
    // threshold.
    thread::sleep(Duration::from_millis(2500));
    let starts = lab.sh_ok("pod-a", &pulses(lab.ip("pod-b"), 3, 300))?;
    thread::sleep(Duration::from_millis(300));
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let injected: Vec<u64> = serde_json::from_str(&starts)?;
    let rates = report["burst_rates"].as_array().unwrap();
    let to_b = rates.iter().find(|r| r["pod"] == "pod-b" && r["direction"] == "tx");
    let to_b = to_b.unwrap_or_else(|| panic!("pod-b's veth was not binned: {rates:?}"));
    let on_b = report["bursts"].as_array().unwrap().iter().filter(|b| b["pod"] == "pod-b").count();
    println!(
        "late pod: {} injected, {} bursts in all, {on_b} of the 10 largest on pod-b's veth; {} \
         packets sent to pod-b binned",
        injected.len(),
        report["burst_count"],
        to_b["rates"]["packets"]
    );
    assert!(to_b["rates"]["packets"].as_u64().unwrap() >= 300 * injected.len() as u64);
    assert!(on_b > 0, "{:#}", report["bursts"]);
    let found = report["findings"].as_array().unwrap();
    let micro = found.iter().find(|f| f["id"] == "microburst").expect("a microburst finding");
    assert!(micro["pods"].as_array().unwrap().iter().any(|p| p == "pod-b"), "{micro:#}");
    Ok(())
}

/// One sent burst in the sender's own 1 ms bins (its send times): the bins netprobe makes,
/// but for the microseconds to the receiver. Busy bins hold 50 datagrams or more.
struct Sent {
    bins: std::collections::BTreeMap<u64, u64>,
    busy: Vec<u64>,
}

impl Sent {
    fn of(times: &[u64]) -> Self {
        let mut bins = std::collections::BTreeMap::<u64, u64>::new();
        for t in times {
            *bins.entry(t / BIN_NS).or_default() += 1;
        }
        let busy = bins.iter().filter(|(_, n)| **n >= 50).map(|(b, _)| *b).collect();
        Self { bins, busy }
    }

    /// The runs of quiet bins between busy ones.
    fn quiet_runs(&self) -> Vec<u64> {
        self.busy.windows(2).map(|w| w[1] - w[0] - 1).filter(|r| *r > 0).collect()
    }

    /// The busy bins in pieces, split where `split` says a run of quiet bins splits them.
    fn pieces(&self, split: impl Fn(u64) -> bool) -> Vec<Vec<u64>> {
        let mut out: Vec<Vec<u64>> = Vec::new();
        for b in &self.busy {
            match out.last_mut() {
                Some(p) if !split(b - p.last().unwrap() - 1) => p.push(*b),
                _ => out.push(vec![*b]),
            }
        }
        out
    }

    /// How many bursts it must be reported as with a merge gap of `gap` bins: a run of quiet
    /// bins up to `gap` joins, a longer one splits. The receiver's bins are the sender's but
    /// for microseconds, so a run may look a bin longer or shorter there (`gap` and `gap + 1`
    /// go either way), and a piece may not reach the threshold there unless a bin of it holds
    /// twice the threshold.
    fn expected(&self, gap: u64) -> std::ops::RangeInclusive<usize> {
        let strong = |p: &Vec<u64>| p.iter().any(|b| self.bins[b] >= 100);
        let lo = self.pieces(|r| r >= gap + 2).iter().filter(|p| strong(p)).count();
        lo.max(1)..=self.pieces(|r| r >= gap).len()
    }

    /// Only the planned pause inside (at most 4 quiet bins: the 2.5 ms and a partly filled
    /// bin at each end), no stall of the sender.
    fn clean(&self) -> bool {
        self.quiet_runs().iter().all(|r| *r <= 4)
    }

    /// Datagrams from the first busy bin to the last, and how many bins that is.
    fn span(&self) -> (u64, u64) {
        let (first, last) = (self.busy[0], *self.busy.last().unwrap());
        (self.bins.range(first..=last).map(|(_, n)| n).sum(), last - first + 1)
    }
}

/// 20 bursts of 2500 datagrams to pod-b, each with a 2.5 ms pause in the middle and 20 ms or
/// more after the previous one, under `netprobe bursts --bin 1ms --threshold 50kpps` and
/// `merge`. The sender runs SCHED_FIFO, so nothing preempts it inside a burst, and its send
/// times say what it did in any case. Checks each burst is reported as `Sent::expected` says
/// and none spans two; returns each burst's send times and the bursts reported for it,
/// retrying while fewer than half the bursts were clean.
fn gapped(lab: &Lab, merge: &[&str], gap: u64) -> anyhow::Result<Vec<(Sent, Vec<Value>)>> {
    for attempt in 1..=3 {
        let args = ["bursts", "--pod", "pod-b", "--direction", "rx", "--bin", "1ms"];
        let args = [&args[..], &["--threshold", "50kpps", "--duration", "4s"], merge].concat();
        let np = start(&[&args[..], &["--format", "json"]].concat())?;
        let (b, tool) = (lab.ip("pod-b"), labtool());
        let sent =
            lab.sh_ok("pod-a", &format!("chrt -f 10 {tool} gapped {b} 9000 20 2500 2500 20"))?;
        let out: Value = serde_json::from_str(&np.wait()?)?;
        let sent: Vec<Vec<u64>> = serde_json::from_str(&sent)?;
        let mut owned: Vec<(Sent, Vec<Value>)> =
            sent.iter().map(|s| (Sent::of(s), Vec::new())).collect();
        for found in bursts(&out, "eth0", "rx") {
            let first = found["start_ns"].as_u64().unwrap() / BIN_NS;
            let bins = (found["duration_us"].as_f64().unwrap() / 1000.0).round() as u64;
            let owners: Vec<usize> = (0..sent.len())
                .filter(|i| {
                    let s = &sent[*i];
                    first <= s.last().unwrap() / BIN_NS + 1 && s[0] / BIN_NS <= first + bins
                })
                .collect();
            // 20 ms of quiet between bursts, four merge gaps: no reported burst spans two.
            assert_eq!(owners.len(), 1, "{found} belongs to bursts {owners:?}");
            owned[owners[0]].1.push(found.clone());
        }
        let mut seen = Vec::new();
        for (sent, found) in &owned {
            let (runs, expected) = (sent.quiet_runs(), sent.expected(gap));
            seen.push(format!("{runs:?}->{}", found.len()));
            assert!(expected.contains(&found.len()), "runs {runs:?}, merge gap {gap}: {found:?}");
        }
        let clean = owned.iter().filter(|(s, _)| s.clean()).count();
        println!("merge gap {gap} ms, attempt {attempt}: {clean} of 20 clean; quiet runs->bursts {seen:?}");
        if clean >= 10 {
            return Ok(owned);
        }
    }
    anyhow::bail!("the sender stalled inside most bursts, three times over")
}

#[test]
fn pauses_inside_a_burst_are_one_burst_and_bursts_apart_stay_apart() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let _sink = lab.spawn("pod-b", &labtool(), &["udp-sink", "9000"])?;
    lab.wait_listening("pod-b", 9000, true)?;

    // The default merge gap, 5 ms: a clean burst, its 2.5 ms pause inside, is one.
    for (sent, found) in gapped(&lab, &[], 5)?.iter().filter(|(s, _)| s.clean()) {
        assert_eq!(found.len(), 1, "{found:?}");
        // Its busy bins, each end a bin either way: 49 datagrams at most in each.
        let packets = found[0]["packets"].as_u64().unwrap();
        let (sent_packets, bins) = sent.span();
        assert!(packets.abs_diff(sent_packets) <= 2 * 49, "{} of {sent_packets}", found[0]);
        let ms = (found[0]["duration_us"].as_f64().unwrap() / 1000.0).round() as u64;
        assert!(ms.abs_diff(bins) <= 1, "{bins} bins: {}", found[0]);
    }

    // No merge gap: the pause alone splits each clean one (2.5 ms hold a whole bin with no
    // datagram at all), so the merging above is what made them one.
    for (sent, found) in gapped(&lab, &["--merge-gap", "0ms"], 0)?.iter().filter(|(s, _)| s.clean())
    {
        assert!(!sent.quiet_runs().is_empty(), "the pause");
        assert!(found.len() >= 2, "{found:?}");
    }
    Ok(())
}
