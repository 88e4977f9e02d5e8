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
}
