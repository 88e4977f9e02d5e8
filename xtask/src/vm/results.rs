//! What a guest printed on its console, judged: each scenario's NPRESULT line holds netprobe's
//! JSON report next to the guest kernel's own counters, and the two must agree exactly.

use anyhow::{bail, Context, Result};
use serde_json::Value;

pub struct Outcome {
    pub scenario: &'static str,
    pub family: &'static str,
    /// The tier netprobe attached the family with, from its report.
    pub tier: String,
    /// What is compared, and its two sides.
    pub counter: &'static str,
    pub netprobe: String,
    pub kernel: String,
    pub pass: bool,
    /// Not a failure: the kernel cannot offer this tier, for a reason netprobe names and the
    /// run accepts (`INFEASIBLE`).
    pub infeasible: bool,
    /// Why it failed: netprobe's error, or what did not agree.
    pub note: String,
}

/// What netprobe says when a function tier cannot run because the kernel's BTF does not give
/// the function's arguments: a module's functions on a kernel without module BTF (5.10).
const INFEASIBLE: &str = "has no BTF for module";

pub struct Guest {
    pub release: String,
    /// The guest's uptime when the runner started (modules loaded), and when it ended.
    pub boot_s: f64,
    pub done_s: Option<f64>,
    pub doctor: Vec<String>,
    pub outcomes: Vec<Outcome>,
}

pub fn parse(console: &str) -> Result<Guest> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let results: Vec<Value> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("NPRESULT "))
        .map(|j| {
            serde_json::from_str(j).with_context(|| format!("a garbled result line: {j:.200}"))
        })
        .collect::<Result<_>>()?;
    let find = |s: &str| results.iter().find(|r| r["scenario"] == s);
    let Some(boot) = find("boot") else { bail!("the guest's runner never started") };
    // netprobe's stderr, per scenario and forced tier.
    let errors = |r: &Value| -> Vec<String> {
        let prefix = format!(
            "NPERR {}@{} ",
            r["scenario"].as_str().unwrap_or(""),
            r["tier"].as_str().unwrap_or("")
        );
        lines.iter().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
    };
    // Every result line of a known scenario, in the guest's order; a scenario that printed
    // none failed.
    let mut outcomes: Vec<Outcome> = results
        .iter()
        .filter_map(|r| {
            let sc = SCENARIOS.iter().find(|sc| r["scenario"] == sc.name)?;
            Some(judge(sc, r, &errors(r)))
        })
        .collect();
    for sc in SCENARIOS {
        if !outcomes.iter().any(|o| o.scenario == sc.name) {
            outcomes.push(Outcome {
                scenario: sc.name,
                family: sc.family,
                tier: "-".into(),
                counter: sc.counter,
                netprobe: "-".into(),
                kernel: "-".into(),
                pass: false,
                infeasible: false,
                note: "no result: the guest stopped before this scenario".into(),
            });
        }
    }
    Ok(Guest {
        release: boot["release"].as_str().unwrap_or("?").to_string(),
        boot_s: boot["uptime"].as_f64().unwrap_or(0.0),
        done_s: find("done").and_then(|d| d["uptime"].as_f64()),
        doctor: lines
            .iter()
            .filter_map(|l| l.strip_prefix("NPDOCTOR "))
            .map(str::to_string)
            .collect(),
        outcomes,
    })
}

struct Scenario {
    name: &'static str,
    family: &'static str,
    counter: &'static str,
    sides: fn(&Value, &Value) -> Sides,
}

/// netprobe's count, the kernel's, and what else a pass needs, from the report and the
/// result line.
type Sides = (u64, u64, Result<(), String>);

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "closed-port",
        family: "drops",
        counter:
            "pod-b NO_SOCKET drops (without drop reasons: freed in __udp4_lib_rcv) vs Udp NoPorts",
        sides: |report, r| {
            let rows = report["drops"].as_array().into_iter().flatten();
            let np = if rows.clone().any(|d| d["reason"] == NO_REASON) {
                // A kernel before drop reasons: the drops of the UDP receive path.
                freed_in(report, "pod-b", "__udp4_lib_rcv")
            } else {
                sum(&report["drops"], |d| d["pod"] == "pod-b" && d["reason"] == "NO_SOCKET")
            };
            let (kernel, sent) = (u(&r["noports"]), u(&r["sent"]));
            (np, kernel, check(kernel == sent, || format!("{sent} sent, NoPorts grew {kernel}")))
        },
    },
    Scenario {
        name: "tcp-retransmits",
        family: "tcp",
        counter: "pod-a retransmits vs TcpRetransSegs",
        sides: |report, r| {
            let retrans = |pod: &str| {
                sum(&report["tcp"], |t| {
                    t["pod"] == pod
                        && t["event"].as_str().is_some_and(|e| e.ends_with("retransmit"))
                })
            };
            let (a, b) = (retrans("pod-a"), retrans("pod-b"));
            let (ka, kb) = (u(&r["retrans_a"]), u(&r["retrans_b"]));
            let extra = check(ka > 0 && b == kb, || {
                format!("pod-a must retransmit; pod-b netprobe {b} vs kernel {kb}")
            });
            (a, ka, extra)
        },
    },
    Scenario {
        name: "tcp-failed-retransmits",
        family: "tcp",
        counter: "pod-a failed retransmits but EBUSY vs TCPRetransFail",
        sides: |report, r| {
            let rows = report["tcp"].as_array().into_iter().flatten();
            let failed = rows.filter(|t| t["pod"] == "pod-a" && t["event"] == "retransmit_failed");
            // The kernel does not count a retransmit refused because the original is still in
            // the host's queues (EBUSY).
            let np = failed.filter(|t| t["error"] != "EBUSY").map(|t| u(&t["count"])).sum();
            let kernel = u(&r["retrans_fail_a"]);
            (np, kernel, check(kernel > 0, || "no retransmit failed".into()))
        },
    },
    Scenario {
        name: "port-exhaustion",
        family: "ports",
        counter: "pod-a connect() EADDRNOTAVAIL vs what the client got",
        sides: |report, r| {
            let np = sum(&report["ports"], |p| {
                p["pod"] == "pod-a" && p["op"] == "connect" && p["errno"] == "EADDRNOTAVAIL"
            });
            let client = u(&r["client"]["eaddrnotavail"]);
            // Read by the program at the error, in the shape this kernel's BTF gives the range
            // (int[2] before 6.3, a packed u32 since), and the socket behind the fd.
            let site = &report["port_errors"][0];
            let facts = (&site["ip_local_port_range"], &site["bound_port"]);
            let extra =
                check(client > 0, || "the client never ran out of ports".into())
                    .and(check(facts == (&"40000-40009".into(), &0.into()), || {
                        format!("range and bound port at the error: {facts:?}, not 40000-40009, 0")
                    }));
            (np, client, extra)
        },
    },
    Scenario {
        name: "bind-conflict",
        family: "ports",
        counter: "pod-b bind() EADDRINUSE vs what the binds got",
        sides: |report, r| {
            let np = sum(&report["ports"], |p| {
                p["pod"] == "pod-b" && p["op"] == "bind" && p["errno"] == "EADDRINUSE"
            });
            let got = u(&r["eaddrinuse"]);
            // At the function tiers inet_csk_bind_conflict's return names the listener.
            let functions = r["tier"] == "fentry" || r["tier"] == "kprobe";
            let sites = report["port_errors"].as_array().into_iter().flatten();
            let held: Vec<&Value> =
                sites.filter(|s| s["op"] == "bind").map(|s| &s["held_by"]).collect();
            let want = Value::from("LISTEN 10.99.0.11:5007");
            let named = held.iter().all(|h| if functions { **h == want } else { h.is_null() });
            let extra = check(got > 0, || "no bind failed".into())
                .and(check(!held.is_empty() && named, || {
                    format!("held_by {held:?}: want {want} at the function tiers only")
                }));
            (np, got, extra)
        },
    },
    Scenario {
        name: "conntrack-messages",
        family: "conntrack",
        counter: "\"table full\" messages vs the guest's dmesg",
        sides: |report, r| {
            let rows = report["conntrack"].as_array().into_iter().flatten();
            let np = rows.map(|row| u(&row["table_full_messages"])).sum();
            // Lines that name no netns count node-wide, in a row of their own.
            let kernel = u(&r["messages"]);
            (np, kernel, check(kernel > 0, || "the kernel printed no 'table full'".into()))
        },
    },
    Scenario {
        name: "conntrack-full",
        family: "conntrack",
        counter: "pod-b verdict drops vs nf_conntrack stat drop",
        sides: |report, r| {
            let row = report["conntrack"]
                .as_array()
                .and_then(|rows| rows.iter().find(|row| row["pod"] == "pod-b").cloned());
            let row = row.unwrap_or(Value::Null);
            let kernel = u(&r["ct_drop"]);
            (
                u(&row["verdict_drops"]),
                kernel,
                check(kernel > 0, || "the table never filled".into()),
            )
        },
    },
    Scenario {
        name: "conntrack-alloc-failures",
        family: "conntrack",
        counter: "pod-b entries not allocated (__nf_conntrack_alloc) vs nf_conntrack stat drop",
        sides: |report, r| {
            let rows = report["conntrack"].as_array().into_iter().flatten();
            let np =
                rows.filter(|row| row["pod"] == "pod-b").map(|row| u(&row["alloc_failed"])).sum();
            let kernel = u(&r["ct_drop"]);
            (np, kernel, check(kernel > 0, || "the table never filled".into()))
        },
    },
    Scenario {
        name: "conntrack-insert-failed",
        family: "conntrack",
        counter: "pod-a inserts failed (__nf_conntrack_confirm) vs nf_conntrack stat insert_failed",
        sides: |report, r| {
            let rows = report["conntrack"].as_array().into_iter().flatten();
            let np =
                rows.filter(|row| row["pod"] == "pod-a").map(|row| u(&row["confirm_failed"])).sum();
            let kernel = u(&r["insert_failed"]);
            (np, kernel, check(kernel > 0, || "no insert race was lost".into()))
        },
    },
    Scenario {
        name: "softnet-squeeze",
        family: "softnet",
        counter: "time squeezes vs /proc/net/softnet_stat, all CPUs",
        sides: |report, r| {
            let cpus = report["softnet"]["cpus"].as_array().into_iter().flatten();
            let np = cpus.map(|c| u(&c["squeezes"])).sum();
            let kernel = u(&r["squeezes"]);
            (np, kernel, check(kernel > 0, || "no NET_RX run was squeezed".into()))
        },
    },
];

fn judge(sc: &Scenario, r: &Value, errors: &[String]) -> Outcome {
    let report = &r["report"];
    let tier = report["families"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["family"] == sc.family))
        .and_then(|f| f["tier"].as_str())
        .map(str::to_string);
    // A forced tier netprobe did not end up at is a failure too.
    let forced = r["tier"].as_str().filter(|t| !t.is_empty());
    let wrong_tier = forced.is_some() && tier.is_some() && tier.as_deref() != forced;
    let tier = tier.or(forced.map(|t| format!("{t} (forced)"))).unwrap_or("-".into());
    let mut out = Outcome {
        scenario: sc.name,
        family: sc.family,
        tier,
        counter: sc.counter,
        netprobe: "-".into(),
        kernel: "-".into(),
        pass: false,
        infeasible: false,
        note: String::new(),
    };
    if wrong_tier {
        out.note = format!("forced to {}, ran at {}", forced.unwrap_or("-"), out.tier);
        return out;
    }
    if r["rc"] != 0 || report.is_null() {
        let said: Vec<&str> = errors.iter().map(String::as_str).collect();
        out.note = format!("netprobe exited {}: {}", r["rc"], said.join(" / "));
        out.infeasible = forced.is_some() && said.iter().any(|l| l.contains(INFEASIBLE));
        return out;
    }
    let (np, kernel, extra) = (sc.sides)(report, r);
    (out.netprobe, out.kernel) = (np.to_string(), kernel.to_string());
    let lost = u(&report["health"]["lost_samples"]);
    out.note = match extra {
        Err(e) => e,
        Ok(()) if np != kernel => format!("netprobe {np} != kernel {kernel}"),
        Ok(()) if lost > 0 => format!("{lost} samples lost"),
        Ok(()) => {
            out.pass = true;
            String::new()
        }
    };
    out
}

/// netprobe's reason for drops on a kernel without drop reasons (docs/json.md).
const NO_REASON: &str = "none";

/// The drops of `pod` freed in kernel function `function`, from the report's timeline.
fn freed_in(report: &Value, pod: &str, function: &str) -> u64 {
    let series = report["timeline"]["series"].as_array().into_iter().flatten();
    series
        .filter(|s| s["metric"] == "drop_location" && s["pod"] == pod)
        .filter(|s| {
            let label = s["label"].as_str().unwrap_or("");
            label.split(['+', ' ']).next() == Some(function)
        })
        .flat_map(|s| s["values"].as_array().into_iter().flatten().map(u))
        .sum()
}

fn sum(rows: &Value, keep: impl Fn(&Value) -> bool) -> u64 {
    rows.as_array().into_iter().flatten().filter(|r| keep(r)).map(|r| u(&r["count"])).sum()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_agree_and_a_missing_scenario_fails() {
        let log = concat!(
            "NPRESULT {\"scenario\":\"boot\",",
            "\"release\":\"6.1.0-50-cloud-amd64\",\"uptime\":2.5}\r\n",
            "NPRESULT {\"scenario\":\"closed-port\",\"tier\":\"tp_btf\",\"rc\":0,\"sent\":50,",
            "\"noports\":50,\"report\":{\"families\":[{\"family\":\"drops\",\"tier\":\"tp_btf\"}],",
            "\"drops\":[{\"pod\":\"pod-b\",\"reason\":\"NO_SOCKET\",\"count\":50}],",
            "\"health\":{\"lost_samples\":0}}}\n",
            "NPERR port-exhaustion@ netprobe: error: no\n",
            "NPRESULT {\"scenario\":\"port-exhaustion\",\"tier\":\"\",\"rc\":1,\"client\":null,",
            "\"report\":null}\n",
            "NPRESULT {\"scenario\":\"tcp-retransmits\",\"tier\":\"tracepoint\",\"rc\":0,",
            "\"retrans_a\":9,\"retrans_b\":0,\"report\":{\"families\":[{\"family\":\"tcp\",",
            "\"tier\":\"tracepoint\"}],\"tcp\":[{\"pod\":\"pod-a\",\"event\":\"retransmit\",",
            "\"count\":8}],\"health\":{\"lost_samples\":0}}}\n",
        );
        let guest = parse(log).unwrap();
        assert_eq!((guest.release.as_str(), guest.boot_s), ("6.1.0-50-cloud-amd64", 2.5));
        let o = |s: &str| guest.outcomes.iter().find(|o| o.scenario == s).unwrap();
        assert!(o("closed-port").pass);
        assert_eq!(
            (o("closed-port").netprobe.as_str(), o("closed-port").tier.as_str()),
            ("50", "tp_btf")
        );
        assert!(!o("port-exhaustion").pass);
        assert!(o("port-exhaustion").note.contains("netprobe: error: no"));
        assert!(!o("tcp-retransmits").pass);
        assert_eq!(o("tcp-retransmits").note, "netprobe 8 != kernel 9");
        assert!(o("softnet-squeeze").note.starts_with("no result"));
        assert!(!o("port-exhaustion").infeasible);
    }

    #[test]
    fn a_tier_the_kernel_cannot_give_the_arguments_for_is_infeasible_not_failed() {
        let log = concat!(
            "NPRESULT {\"scenario\":\"boot\",\"release\":\"5.10.0-46-cloud-amd64\",",
            "\"uptime\":2.5}\n",
            "NPERR conntrack-alloc-failures@kprobe netprobe: error: no tier of hook family ",
            "`conntrack` works on this kernel: kprobe: __nf_conntrack_alloc: this kernel has no ",
            "BTF for module nf_conntrack (built without CONFIG_DEBUG_INFO_BTF_MODULES)\n",
            "NPRESULT {\"scenario\":\"conntrack-alloc-failures\",\"tier\":\"kprobe\",\"rc\":1,",
            "\"ct_drop\":80,\"report\":null}\n",
            "NPERR port-exhaustion@kprobe netprobe: error: no tier works: verifier says no\n",
            "NPRESULT {\"scenario\":\"port-exhaustion\",\"tier\":\"kprobe\",\"rc\":1,",
            "\"client\":null,\"report\":null}\n",
        );
        let guest = parse(log).unwrap();
        let o = |s: &str| guest.outcomes.iter().find(|o| o.scenario == s).unwrap();
        let ct = o("conntrack-alloc-failures");
        assert!(ct.infeasible && !ct.pass, "{}", ct.note);
        let ports = o("port-exhaustion");
        assert!(!ports.infeasible && !ports.pass, "{}", ports.note);
    }

    #[test]
    fn without_drop_reasons_closed_port_drops_are_found_by_location() {
        let log = concat!(
            "NPRESULT {\"scenario\":\"boot\",\"release\":\"5.10.0-46-cloud-amd64\",",
            "\"uptime\":2.5}\n",
            "NPRESULT {\"scenario\":\"closed-port\",\"tier\":\"tracepoint\",\"rc\":0,",
            "\"sent\":50,\"noports\":50,\"report\":{\"families\":[{\"family\":\"drops\",",
            "\"tier\":\"tracepoint\"}],\"drops\":[{\"pod\":\"pod-b\",\"reason\":\"none\",",
            "\"count\":53}],\"timeline\":{\"series\":[",
            "{\"metric\":\"drop_location\",\"pod\":\"pod-b\",",
            "\"label\":\"__udp4_lib_rcv+0x9a3 none\",\"values\":[20,30]},",
            "{\"metric\":\"drop_location\",\"pod\":\"pod-b\",",
            "\"label\":\"tcp_v4_rcv+0x99 none\",\"values\":[3,0]}]},",
            "\"health\":{\"lost_samples\":0}}}\n",
        );
        let guest = parse(log).unwrap();
        let o = guest.outcomes.iter().find(|o| o.scenario == "closed-port").unwrap();
        assert!(o.pass, "{}", o.note);
        assert_eq!(o.netprobe, "50");
    }
}
