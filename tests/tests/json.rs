//! The JSON netprobe prints against docs/json.md, which scripts are told to rely on: each
//! watch record type with exactly its documented fields and their types. (Reports are checked
//! the same way in every incident test, and `bursts` summaries in the bursts tests.)

mod common;

use std::collections::BTreeSet;

use common::{docs, incident};
use netprobe_tests::netprobe::Running;
use serde_json::Value;

#[test]
fn docs_have_a_table_for_every_record_type() {
    let tables = docs::json_tables();
    for t in [
        "drop",
        "tcp",
        "port",
        "burst",
        "squeeze",
        "conntrack_table_full",
        "conntrack",
        "listen_overflow",
        "listen_queue",
        "lost_samples",
        "flow",
        "report",
        "bursts",
    ] {
        let fields = tables.get(t).unwrap_or_else(|| panic!("no table for {t}: {tables:?}"));
        assert!(!fields.is_empty(), "{t}");
    }
    // Every incident's finding is documented, once.
    let ids = docs::finding_ids();
    for i in netprobe_tests::incidents::ALL {
        assert_eq!(ids.iter().filter(|d| *d == i.finding).count(), 1, "{}: {ids:?}", i.finding);
    }
}

#[test]
fn watch_records_of_every_type_are_as_documented() -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for (name, expect) in [
        ("conntrack-full", &["conntrack_table_full", "conntrack", "drop"][..]),
        ("listen-overflow", &["listen_overflow", "listen_queue", "tcp"][..]),
        ("softnet-squeeze", &["squeeze"][..]),
        ("port-exhaustion", &["port"][..]),
    ] {
        let (lab, _running, incident) = incident(name)?;
        let np = Running::start(&["watch", "--events", incident.events, "--format", "json"])?;
        (incident.provoke)(&lab)?;
        // Conntrack and listeners are polled once a second.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let out = np.stop()?;
        let records: Vec<Value> =
            out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        let types: BTreeSet<String> =
            records.iter().filter_map(|r| r["type"].as_str().map(str::to_owned)).collect();
        println!("{name}: {} records of types {types:?}", records.len());
        for t in expect {
            assert!(types.contains(*t), "{name}: no `{t}` record among {types:?}");
        }
        records.iter().for_each(docs::check_watch_record);
        seen.extend(types);
    }
    println!("checked against docs/json.md: {seen:?}");
    Ok(())
}
