//! Overload: a reader that cannot keep up loses samples, says how many, and exact counts stay
//! exact (a report, which counts drops without sampling them, loses none). The readers are
//! stopped (SIGSTOP) while a closed-port blast fills watch's ring buffer (4 MB), then resumed;
//! the kernel's own `Udp NoPorts` of the receiving pod is the truth.

mod common;

use std::{thread, time::Duration};

use common::{assert_best_tiers, require_root};
use netprobe_tests::{incidents::labtool, lab::Lab, netprobe::Running};
use serde_json::Value;

/// Far more datagrams than the ring buffer holds samples of.
const BLAST: u64 = 150_000;

#[test]
fn lost_samples_are_counted_and_exact_counts_stay_exact() -> anyhow::Result<()> {
    require_root();
    let lab = Lab::up(&["pod-a", "pod-b"])?;
    let before = lab.snmp("pod-b", "Udp", "NoPorts")?;
    let args = ["--events", "drops", "--pod", "pod-b", "--format", "json"];
    let report = Running::start(&[&["report", "--duration", "10m"][..], &args].concat())?;
    let watch = Running::start(&[&["watch"][..], &args].concat())?;
    for np in [&report, &watch] {
        unsafe { libc::kill(np.pid() as i32, libc::SIGSTOP) };
    }
    let b = lab.ip("pod-b").to_string();
    let blasted = lab.sh_ok("pod-a", &format!("{} blast {b} 9 {BLAST}", labtool()));
    for np in [&report, &watch] {
        unsafe { libc::kill(np.pid() as i32, libc::SIGCONT) };
    }
    blasted?;
    // Draining 4 MB of samples takes well under this.
    thread::sleep(Duration::from_millis(1500));
    let report: Value = serde_json::from_str(&report.stop()?)?;
    let out = watch.stop()?;
    let kernel = lab.snmp("pod-b", "Udp", "NoPorts")? - before;
    assert_best_tiers(&report);

    // The report: exact counts exact, and no drop samples taken to lose.
    let counted: u64 = report["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .filter(|d| d["pod"] == "pod-b" && d["reason"] == "NO_SOCKET")
        .map(|d| d["count"].as_u64().expect("count"))
        .sum();
    let samples = report["samples"].as_u64().expect("samples");
    let lost = report["health"]["lost_samples"].as_u64().expect("lost_samples");
    println!(
        "report: Udp NoPorts {kernel}, netprobe NO_SOCKET {counted}, samples {samples} lost {lost}"
    );
    assert!(kernel >= BLAST * 9 / 10, "the blast reached pod-b: {kernel} of {BLAST}");
    assert_eq!(counted, kernel, "exact counts stay exact under overload");
    assert_eq!((samples, lost), (0, 0), "a report only counts drops: {}", report["health"]);

    // watch: a drop record per delivered sample, and lost_samples records with the total.
    let records: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    // Every record as docs/json.md has it (the first few thousand: the check is slow).
    records.iter().take(2000).for_each(common::docs::check_watch_record);
    records
        .iter()
        .filter(|r| r["type"] == "lost_samples")
        .for_each(common::docs::check_watch_record);
    let drops = records.iter().filter(|r| r["type"] == "drop").count() as u64;
    let totals: Vec<u64> = records
        .iter()
        .filter(|r| r["type"] == "lost_samples")
        .map(|r| r["total"].as_u64().expect("total"))
        .collect();
    println!("watch: {drops} drop records, lost_samples totals {totals:?}");
    let last = *totals.last().unwrap_or_else(|| panic!("no lost_samples record in watch"));
    assert!(totals.windows(2).all(|w| w[0] < w[1]), "totals only grow: {totals:?}");
    assert!(records.iter().filter(|r| r["type"] == "drop").all(|r| r["pod"] == "pod-b"));
    assert_eq!(drops + last, kernel, "watch: every sample printed or counted lost");
    Ok(())
}
