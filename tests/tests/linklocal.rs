//! Link-local DNS limits (incident notes 02): pods query a resolver on 169.254.169.253 in its
//! own netns (and fd00:ec2::253), and the cluster DNS IP, at different rates. netprobe's
//! per-pod counts equal the resolver's nft counters for each pod and direction, and its own
//! Udp and Udp6 InDatagrams and OutDatagrams in all; the finding names the busiest pod first, and a pod that sends only
//! elsewhere gets nothing.

mod common;

use common::{incident, settle};
use netprobe_tests::{
    incidents::{LOOKUPS, RESOLVER, VPC_RESOLVER},
    lab::Lab,
    netprobe::{self, Running},
};
use serde_json::Value;

/// The resolver's nft counters by comment: `pod-a/out/link_local` -> packets.
fn nft_counters(lab: &Lab) -> anyhow::Result<Vec<(String, u64)>> {
    let ruleset: Value = serde_json::from_str(&lab.sh_ok(RESOLVER, "nft -j list ruleset")?)?;
    let rules = ruleset["nftables"].as_array().into_iter().flatten().filter_map(|o| o.get("rule"));
    Ok(rules
        .filter_map(|r| {
            let packets =
                r["expr"].as_array()?.iter().find_map(|e| e.get("counter"))?["packets"].as_u64()?;
            Some((r["comment"].as_str()?.to_owned(), packets))
        })
        .collect())
}

/// netprobe's packets of `pod` in `direction` to `destination` as the nft comments name it
/// (link_local, link_local6 for IPv6, cluster_dns).
fn counted(report: &Value, pod: &str, direction: &str, destination: &str) -> u64 {
    let (destination, v6) = match destination {
        "link_local6" => ("link_local", true),
        d => (d, false),
    };
    report["linklocal"]["rows"]
        .as_array()
        .expect("linklocal rows")
        .iter()
        .filter(|r| r["pod"] == pod && r["direction"] == direction)
        .filter(|r| r["destination"] == destination)
        .filter(|r| r["addr"].as_str().expect("addr").contains(':') == v6)
        .map(|r| r["packets"].as_u64().expect("packets"))
        .sum()
}

#[test]
fn per_pod_counts_match_the_resolvers_counters() -> anyhow::Result<()> {
    let (lab, _resolver, incident) = incident("linklocal-dns")?;
    let cluster = lab.ip(RESOLVER).to_string();
    let udp = |field| lab.snmp(RESOLVER, "Udp", field);
    let udp6 = |field| lab.snmp6(RESOLVER, field);
    let (in_before, out_before) = (udp("InDatagrams")?, udp("OutDatagrams")?);
    let (in6_before, out6_before) = (udp6("Udp6InDatagrams")?, udp6("Udp6OutDatagrams")?);
    let recording = common::Scratch::new("linklocal.np");
    let np = Running::start(&[
        "report",
        "--duration",
        "10m",
        "--events",
        incident.events,
        "--format",
        "json",
        "--dns-ip",
        &cluster,
        "--record",
        recording.str(),
    ])?;
    (incident.provoke)(&lab)?;
    settle();
    let report: Value = serde_json::from_str(&np.stop()?)?;
    let (received, sent) = (udp("InDatagrams")? - in_before, udp("OutDatagrams")? - out_before);
    let received6 = udp6("Udp6InDatagrams")? - in6_before;
    let sent6 = udp6("Udp6OutDatagrams")? - out6_before;
    common::assert_finding(&report, incident);
    let nft = nft_counters(&lab)?;
    println!(
        "resolver nft counters: {nft:?}; Udp InDatagrams {received}, OutDatagrams {sent}; \
         Udp6 InDatagrams {received6}, OutDatagrams {sent6}"
    );
    println!("netprobe: {:#}", report["linklocal"]);

    // Every query was answered, so each is one packet each way.
    let [a, b, b6, b_cluster] = LOOKUPS.map(u64::from);
    assert_eq!((received, sent), (a + b + b_cluster, a + b + b_cluster));
    assert_eq!((received6, sent6), (b6, b6));
    for (comment, packets) in &nft {
        let mut words = comment.split('/');
        let (pod, direction, destination) =
            (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
        assert_eq!(counted(&report, pod, direction, destination), *packets, "{comment}");
    }
    let by_comment = |c: &str| nft.iter().find(|(n, _)| n == c).map(|(_, p)| *p);
    assert_eq!(by_comment("pod-a/out/link_local"), Some(a));
    assert_eq!(by_comment("pod-b/in/cluster_dns"), Some(b_cluster));
    assert_eq!(by_comment("pod-b/in/link_local6"), Some(b6));
    // The resolver's own totals: everything it received and sent is some pod's count.
    let all = |direction| -> u64 {
        ["link_local", "link_local6", "cluster_dns"]
            .iter()
            .flat_map(|d| ["pod-a", "pod-b", "pod-c"].map(|p| counted(&report, p, direction, d)))
            .sum()
    };
    assert_eq!((all("out"), all("in")), (received + received6, sent + sent6));
    let rows = report["linklocal"]["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["pod"] != "pod-c" && r["pod"] != RESOLVER), "{rows:#?}");
    let resolver = rows.iter().find(|r| r["pod"] == "pod-a").unwrap();
    assert_eq!(
        (resolver["addr"].as_str(), resolver["port"].as_u64(), resolver["proto"].as_str()),
        (Some(VPC_RESOLVER), Some(53), Some("udp"))
    );

    // The node's busiest second is pod-a's and pod-b's link-local packets, pod-a first.
    let ll = &report["linklocal"];
    let peak = ll["peak_pps"].as_u64().unwrap();
    assert!(peak >= 1024 * 8 / 10, "{ll:#}");
    let peak_pods = ll["peak_pods"].as_array().unwrap();
    assert_eq!(peak_pods[0]["pod"], "pod-a", "{ll:#}");
    let finding = &report["findings"][0];
    assert_eq!(finding["pods"][0], "pod-a", "{finding:#}");
    assert_eq!(finding["evidence"][0]["netprobe"], peak);

    // Read back from the recording: the same section and findings, the DNS IPs included.
    let out = netprobe::run(&["report", "--from", recording.str(), "--format", "json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(replayed["linklocal"], report["linklocal"]);
    assert_eq!(replayed["findings"], report["findings"]);
    Ok(())
}

/// The agent's address, from its "serving http://ADDR/metrics" line.
fn address(agent: &Running) -> String {
    let line =
        agent.stderr_seen.iter().find(|l| l.contains("serving http://")).expect("the serving line");
    let rest = line.split("http://").nth(1).expect("an address");
    rest.split('/').next().expect("host:port").to_owned()
}

fn get(url: &str) -> String {
    ureq::get(url).call().expect("the agent answers").body_mut().read_to_string().expect("text")
}

#[test]
fn the_agent_exports_each_pods_link_local_packets_and_finds_the_rate() -> anyhow::Result<()> {
    let (lab, _resolver, incident) = incident("linklocal-dns")?;
    let agent = Running::start(&["agent", "--listen", "127.0.0.1:0", "--events", incident.events])?;
    let base = format!("http://{}", address(&agent));
    (incident.provoke)(&lab)?;
    settle();
    let metrics = get(&format!("{base}/metrics"));
    let findings: Value = serde_json::from_str(&get(&format!("{base}/api/v1/findings?window=5m")))?;
    drop(agent);
    let series: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("netprobe_linklocal_packets_total{")).collect();
    println!("{}", series.join("\n"));
    for (comment, packets) in nft_counters(&lab)?.iter().filter(|(c, _)| c.ends_with("link_local"))
    {
        let mut words = comment.split('/');
        let (pod, direction) = (words.next().unwrap(), words.next().unwrap());
        let labels = format!(
            r#"namespace="",pod="{pod}",destination="link_local",direction="{direction}",service="{VPC_RESOLVER}:53/udp"}}"#
        );
        let exported = series
            .iter()
            .find_map(|l| l.split_once(&labels)?.1.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        assert_eq!(exported, *packets as f64, "{comment}: {series:#?}");
    }
    assert!(series.iter().all(|l| !l.contains(r#"pod="pod-c""#)), "{series:#?}");
    let first = &findings["findings"][0];
    assert_eq!(first["id"], "linklocal_dns_rate", "{findings:#}");
    assert_eq!(first["pods"][0], "pod-a", "{first:#}");
    Ok(())
}
