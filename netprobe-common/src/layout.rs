//! Where things are in the running kernel, resolved by the loader from BTF and tracepoint
//! format files, and handed to the programs as one read-only global. Never compiled in.

/// Context offsets of one tracepoint's arguments, in an order each hook family defines.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub off: [u32; 4],
}

/// Index into a `[Args; 2]`: BTF-typed tiers (tp_btf, raw tracepoint) see the prototype's
/// arguments as 8-byte slots; the classic tier sees the event record of the format file.
pub const BTF: usize = 0;
pub const CLASSIC: usize = 1;

/// The offset of an optional argument this kernel's tracepoint does not have (kfree_skb's
/// reason before 5.17): programs read it as 0 instead.
pub const NO_ARG: u32 = u32::MAX;

/// Index into a kernel function's `[Args; 2]`: fentry/fexit see its arguments as 8-byte slots
/// (the return value in the slot after the last); kprobes see `struct pt_regs`, where each
/// argument is in the register the calling convention gives it.
pub const FENTRY: usize = 0;
pub const KPROBE: usize = 1;
/// Where a function's `Args` keeps its return value's offset; arguments come before it.
pub const RET: usize = 3;

/// Byte offsets. Every field a loaded program uses is resolved first: the loader refuses to
/// start rather than read the wrong memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    pub skb_dev: u32,
    pub skb_sk: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_len: u32,
    /// `skb->cb` plus `struct tcp_skb_cb.tcp_gso_segs`.
    pub skb_tcp_gso_segs: u32,
    pub net_device_nd_net: u32,
    pub net_device_ifindex: u32,
    pub net_ns_inum: u32,
    /// `struct sock_common` fields; request socks start with one too.
    pub sk_net: u32,
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    /// The value of TCP_SYN_SENT in this kernel's TCP state enum.
    pub tcp_syn_sent: u32,
    /// `struct tcp_sock`'s activity times, in jiffies (u32): last ACK received
    /// (`rcv_tstamp`), last data received (`inet_conn.icsk_ack.lrcvtime`), last data sent
    /// (`lsndtime`).
    pub tcp_rcv_tstamp: u32,
    pub tcp_lrcvtime: u32,
    pub tcp_lsndtime: u32,
    /// The kernel's CONFIG_HZ (jiffies per second); 0 when unknown: no idle times.
    pub hz: u32,
    pub task_nsproxy: u32,
    pub nsproxy_net_ns: u32,
    /// A syscall's fd to its socket: task -> files -> fdt -> fd[] -> file -> socket -> sk.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_file: u32,
    pub socket_sk: u32,
    /// `net->ipv4.ip_local_ports.range`, shaped as [`port_range`] says.
    pub net_port_range: u32,
    pub port_range_shape: u32,
    /// errno values the ports family reports (positive).
    pub eaddrinuse: u32,
    pub eaddrnotavail: u32,
    /// NET_RX_SOFTIRQ in this kernel's softirq enum.
    pub net_rx_softirq: u32,
    pub napi_poll: u32,
    pub sd_backlog: u32,
    pub sd_time_squeeze: u32,
    /// Address of process_backlog (kallsyms): the poll function of softnet_data.backlog.
    pub process_backlog: u64,
    pub kfree_skb: [Args; 2],
    pub tcp_retransmit_skb: [Args; 2],
    pub tcp_retransmit_synack: [Args; 2],
    pub tcp_send_reset: [Args; 2],
    pub tcp_receive_reset: [Args; 2],
    pub sys_enter_connect: [Args; 2],
    pub sys_exit_connect: [Args; 2],
    pub sys_enter_bind: [Args; 2],
    pub sys_exit_bind: [Args; 2],
    pub printk_console: [Args; 2],
    pub softirq_entry: [Args; 2],
    pub softirq_exit: [Args; 2],
    pub napi_poll_args: [Args; 2],
    pub netif_receive_skb: [Args; 2],
    pub net_dev_start_xmit: [Args; 2],
    /// Kernel functions, as their BTF prototypes give their arguments (`FENTRY`, `KPROBE`).
    pub tcp_retransmit_fn: [Args; 2],
    pub inet_hash_connect_fn: [Args; 2],
    pub ct_alloc_fn: [Args; 2],
    pub ct_confirm_fn: [Args; 2],
    pub bind_conflict_fn: [Args; 2],
    /// Where a bind bucket's sockets are (`NO_ARG` where this kernel has no such field):
    /// `inet_bind_bucket.owners` by `skc_bind_node` (before 6.x's bhash2 took them), else
    /// `inet_bind_bucket.bhash2` -> `inet_bind2_bucket.owners` by `sk_bind2_node` (6.1's own
    /// node, later `skc_bind_node`).
    pub tb_owners: u32,
    pub sk_bind_node: u32,
    pub tb_bhash2: u32,
    pub tb2_bhash_node: u32,
    pub tb2_owners: u32,
    pub sk_bind2_node: u32,
}

/// How this kernel stores a netns's `ip_local_port_range`, as its BTF says.
pub mod port_range {
    /// Not found: samples carry no range.
    pub const UNKNOWN: u32 = 0;
    /// `u32 range`: low in bits 0-15, high in bits 16-31 (6.3 on).
    pub const PACKED_U32: u32 = 1;
    /// `int range[2]`: low, high (before 6.3).
    pub const INT_PAIR: u32 = 2;
}

/// Load-time options that are not about kernel layout.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// 1: only sample events of the netns in the SELECTED map, which userspace keeps in step
    /// with the pods a selection matches; 0: sample every netns. Counts are always kept.
    pub by_selection: u32,
    /// 1: kfree_skb samples each drop (of a netns sampled); 0: it only counts them, for
    /// report, record and agent, which take drops from the exact counters.
    pub drop_samples: u32,
}

/// Pods a selection may match at once (SELECTED's size).
pub const MAX_SELECTED: u32 = 4096;

crate::user_pod!(KernelLayout, Filter, Args);
