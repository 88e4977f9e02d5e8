//! Struct field offsets of the running kernel, from its BTF, for the programs' `LAYOUT`.

use netprobe_common::layout::KernelLayout;

use crate::{btf::KernelBtf, error::Error};

/// Every struct offset the programs read; tracepoint argument offsets are left for the hook
/// family to fill in, since they depend on the tier it attaches with.
pub fn resolve(btf: &KernelBtf) -> Result<KernelLayout, Error> {
    Ok(KernelLayout {
        skb_dev: btf.offset_of("sk_buff", &["dev"])?,
        skb_sk: btf.offset_of("sk_buff", &["sk"])?,
        skb_head: btf.offset_of("sk_buff", &["head"])?,
        skb_network_header: btf.offset_of("sk_buff", &["network_header"])?,
        net_device_nd_net: btf.offset_of("net_device", &["nd_net", "net"])?,
        net_device_ifindex: btf.offset_of("net_device", &["ifindex"])?,
        sock_net: btf.offset_of("sock", &["__sk_common", "skc_net", "net"])?,
        net_ns_inum: btf.offset_of("net", &["ns", "inum"])?,
        ..KernelLayout::default()
    })
}
