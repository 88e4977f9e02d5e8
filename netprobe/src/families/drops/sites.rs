//! Where the kernel frees a dropped packet says what dropped it. Drops are counted exactly per
//! location, so these functions give drops a meaning without assuming anything about the
//! kernel's reason names or values.

/// A netfilter hook's NF_DROP verdict: conntrack's, when its table is full.
pub const HOOK_VERDICT: &str = "nf_hook_slow";
/// A drop by an nf_tables rule: policy.
pub const NFT_RULE: &str = "nft_do_chain";
/// A CPU's input backlog (net.core.netdev_max_backlog) was full.
pub const BACKLOG_FULL: &str = "enqueue_to_backlog";

/// A closing socket freeing what it still queued: no packet was lost on the network.
pub const SOCKET_TEARDOWN: &str = "sk_stream_kill_queues";

/// Traffic that was never the pod's to take, freed where the kernel finds nobody wants it:
/// (function, reason), any reason where None. Every pod on a bridge gets some; it is counted
/// and shown like any drop, never a finding.
const BACKGROUND: &[(&str, Option<&str>)] = &[
    // IPv6 multicast to a group the pod has not joined.
    ("ip6_mc_input", None),
    // IPv4 multicast to a group it has not joined (seen on 6.18); input routing names a
    // reason for the failures seen otherwise, so a reasonless drop there is taken as this.
    ("ip_rcv_finish_core", Some("NOT_SPECIFIED")),
    // Multicast or broadcast UDP to a port nothing listens on (Udp IgnoredMulti). Where the
    // compiler inlined mcast_deliver, its drop is the receive function's one without a
    // reason (else only a datagram shorter than its UDP header).
    ("__udp4_lib_mcast_deliver", None),
    ("__udp6_lib_mcast_deliver", None),
    ("__udp4_lib_rcv", Some("NOT_SPECIFIED")),
    ("__udp6_lib_rcv", Some("NOT_SPECIFIED")),
];

/// A frame for another host's MAC that a bridge flooded to the pod. IP input frees it at the
/// same place as malformed packets, so the reason (named from the kernel's BTF) tells.
const OTHER_HOST: &str = "OTHERHOST";

/// Whether a drop at `function` with `reason` is background rather than loss.
pub fn background(function: &str, reason: &str) -> bool {
    reason == OTHER_HOST
        || BACKGROUND.iter().any(|(f, r)| *f == function && r.is_none_or(|r| r == reason))
}

/// The function of a symbolised location, `nf_hook_slow+0x7d` -> `nf_hook_slow`.
pub fn function(location: &str) -> &str {
    location.split('+').next().unwrap_or(location)
}

#[cfg(test)]
mod tests {
    #[test]
    fn functions_of_locations() {
        assert_eq!(super::function("enqueue_to_backlog+0x153"), "enqueue_to_backlog");
        assert_eq!(super::function("0xffffffff81000000"), "0xffffffff81000000");
    }

    #[test]
    fn background_is_told_by_location_and_other_hosts_by_reason() {
        assert!(super::background("ip6_mc_input", "NOT_SPECIFIED"));
        assert!(super::background("__udp4_lib_mcast_deliver", "NOT_SPECIFIED"));
        assert!(super::background("__udp4_lib_rcv", "NOT_SPECIFIED"));
        assert!(super::background("ip_rcv_core", "OTHERHOST"));
        assert!(!super::background("ip_rcv_core", "IP_CSUM"));
        // Any named reason at the same function is loss (a closed port, a bad checksum).
        assert!(!super::background("__udp4_lib_rcv", "UDP_CSUM"));
        assert!(!super::background("ip_rcv_finish_core", "IP_INADDRERRORS"));
    }
}
