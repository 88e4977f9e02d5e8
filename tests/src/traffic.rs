//! Real traffic the kernel drops, between lab pods. Loops are bounded; only lab addresses.

use anyhow::Result;

use crate::lab::Lab;

/// `n` TCP connection attempts from `from` to a closed `port` in `to`: one SYN each, answered
/// with a RST, each a NO_SOCKET drop in `to`.
pub fn tcp_closed(lab: &Lab, from: &str, to: &str, port: u16, n: u32) -> Result<()> {
    let ip = lab.ip(to);
    lab.sh(
        from,
        &format!("for i in $(seq {n}); do (exec 3<>/dev/tcp/{ip}/{port}) 2>/dev/null; done"),
    )?;
    Ok(())
}

/// `n` UDP datagrams from `from` to `addr`:`port` (IPv4 or IPv6 literal).
pub fn udp(lab: &Lab, from: &str, addr: &str, port: u16, n: u32) -> Result<()> {
    lab.sh(from, &format!("for i in $(seq {n}); do echo x >/dev/udp/{addr}/{port}; done"))?;
    Ok(())
}

/// nft `rules` in `pod`, in a filter chain on `hook` (input or output) of table inet np.
pub fn nft(lab: &Lab, pod: &str, hook: &str, rules: &[&str]) -> Result<()> {
    let mut script = format!(
        "nft add table inet np && \
         nft add chain inet np {hook} '{{ type filter hook {hook} priority 0; }}'"
    );
    for rule in rules {
        script += &format!(" && nft add rule inet np {hook} {rule}");
    }
    lab.sh_ok(pod, &script).map(drop)
}

/// nft rules in `pod` that drop inbound UDP and TCP to `port`, each with a counter.
pub fn firewall(lab: &Lab, pod: &str, port: u16) -> Result<()> {
    let (udp, tcp) =
        (format!("udp dport {port} counter drop"), format!("tcp dport {port} counter drop"));
    nft(lab, pod, "input", &[&udp, &tcp])
}

/// Packets dropped so far by the counters of every nft rule in `pod`.
pub fn nft_dropped(lab: &Lab, pod: &str) -> Result<u64> {
    let ruleset: serde_json::Value = serde_json::from_str(&lab.sh_ok(pod, "nft -j list ruleset")?)?;
    let rules = ruleset["nftables"].as_array().into_iter().flatten().filter_map(|o| o.get("rule"));
    Ok(rules
        .flat_map(|r| r["expr"].as_array().into_iter().flatten())
        .filter_map(|e| e.get("counter")?["packets"].as_u64())
        .sum())
}
