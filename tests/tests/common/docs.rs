//! What docs/json.md and docs/findings.md promise, read from the documents themselves, to
//! check netprobe's output against: every field documented and present, nothing
//! undocumented, each value of its documented JSON type, every finding id documented.

use std::collections::BTreeMap;

use serde_json::Value;

fn doc(name: &str) -> String {
    let path = format!("{}/../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Field name to documented type ("" when the table leaves it to an earlier one).
pub type Fields = BTreeMap<String, String>;

/// The tables of docs/json.md: `drop`, `tcp`, … (watch record types), `flow`, `report` and
/// `bursts`.
pub fn json_tables() -> &'static BTreeMap<String, Fields> {
    static TABLES: std::sync::OnceLock<BTreeMap<String, Fields>> = std::sync::OnceLock::new();
    TABLES.get_or_init(parse_json_md)
}

fn parse_json_md() -> BTreeMap<String, Fields> {
    let text = doc("json.md");
    let mut tables: BTreeMap<String, Fields> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            current = if h.starts_with("Flow fields") {
                Some("flow".into())
            } else {
                h.split('"').nth(3).map(str::to_owned)
            };
        } else if line.starts_with("## `netprobe report") {
            current = Some("report".into());
        } else if line.starts_with("## `netprobe bursts") {
            current = Some("bursts".into());
        } else if line.starts_with("## ") {
            current = None;
        } else if let (Some(table), true) = (&current, line.starts_with("| ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (names, types) = (cells[1], cells[2]);
            if names == "field" || names.starts_with("---") {
                continue;
            }
            let fields = tables.entry(table.clone()).or_default();
            if names == "flow fields" {
                fields.insert("flow fields".into(), String::new());
                continue;
            }
            let names: Vec<&str> = names.split('`').skip(1).step_by(2).collect();
            // "addr, port | string, integer": one type per name; else one type for all.
            let parts: Vec<&str> = types.split(", ").collect();
            for (i, n) in names.iter().enumerate() {
                let t = if parts.len() == names.len() { parts[i] } else { types };
                fields.insert((*n).to_owned(), t.to_owned());
            }
        }
    }
    tables
}

/// Types of fields whose row says "as above" (or leaves the type blank).
fn implied(field: &str) -> &'static str {
    match field {
        "time" | "pod" | "comm" | "interface" | "addr" => "string",
        "ts_ns" | "start_ns" | "cpu" | "netns" | "pid" | "tgid" | "packets" | "bytes" | "count"
        | "max" | "port" | "queue" | "max_queue" => "integer",
        "duration_us" => "number",
        _ => "",
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    let t = if t.is_empty() { return true } else { t };
    t.split(" or ").any(|t| match t.trim() {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "bool" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        // Documented as present only sometimes; checked when it is there.
        "absent" => false,
        other => panic!("docs/json.md: unknown type `{other}`"),
    })
}

/// `object` has exactly the fields of `fields` (flow fields expanded), each of its type.
fn check_object(what: &str, object: &Value, fields: &Fields, tables: &BTreeMap<String, Fields>) {
    let map = object.as_object().unwrap_or_else(|| panic!("{what}: not an object: {object}"));
    let mut expected: Fields = Fields::new();
    for (name, t) in fields {
        if name == "flow fields" {
            expected.extend(tables["flow"].clone());
        } else {
            // `health.lost_samples`: a field of the object `health`.
            match name.split_once('.') {
                Some((outer, _)) => expected.insert(outer.to_owned(), "object".into()),
                None => expected.insert(name.clone(), t.clone()),
            };
        }
    }
    for (name, t) in &expected {
        let Some(v) = map.get(name) else {
            assert!(t.contains("absent"), "{what}: documented `{name}` missing: {object}");
            continue;
        };
        let t = if t.is_empty() { implied(name) } else { t.as_str() };
        assert!(has_type(v, t), "{what}: `{name}` is {v}, documented as {t}");
    }
    for name in map.keys() {
        assert!(expected.contains_key(name), "{what}: `{name}` is not in docs/json.md: {object}");
    }
    for (name, t) in fields {
        if let Some((outer, inner)) = name.split_once('.') {
            let v = &object[outer][inner];
            assert!(has_type(v, t), "{what}: `{name}` is {v}, documented as {t}");
        }
    }
}

/// A `watch --format json` record against its type's table in docs/json.md.
pub fn check_watch_record(record: &Value) {
    let tables = json_tables();
    let t = record["type"].as_str().unwrap_or_else(|| panic!("no type: {record}"));
    let mut fields = tables
        .get(t)
        .unwrap_or_else(|| panic!("record type `{t}` is not in docs/json.md: {record}"))
        .clone();
    fields.insert("type".into(), "string".into());
    check_object(&format!("watch record `{t}`"), record, &fields, tables);
}

/// A `report --format json` against docs/json.md, its version among them, and its finding
/// ids against docs/findings.md.
pub fn check_report(report: &Value) {
    let tables = json_tables();
    check_object("report", report, &tables["report"], tables);
    let version = doc("json.md");
    let documented = version
        .split("Report format version, currently ")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .expect("the report's version in docs/json.md");
    assert_eq!(report["version"].to_string(), documented, "report version");
    let ids = finding_ids();
    for f in report["findings"].as_array().expect("findings") {
        let id = f["id"].as_str().expect("finding id");
        assert!(ids.iter().any(|d| d == id), "finding `{id}` is not in docs/findings.md");
    }
}

/// A `bursts --format json` summary against docs/json.md.
pub fn check_bursts(summary: &Value) {
    let tables = json_tables();
    check_object("bursts", summary, &tables["bursts"], tables);
}

/// The ids of docs/findings.md's table of findings (the one headed `| id |`).
pub fn finding_ids() -> Vec<String> {
    doc("findings.md")
        .lines()
        .skip_while(|l| !l.starts_with("| id |"))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_owned))
        .collect()
}
