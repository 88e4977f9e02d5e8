//! Reading kernel memory at offsets the loader resolved from the running kernel's BTF.

use aya_ebpf::{helpers::bpf_probe_read_kernel, macros::map, maps::PerCpuArray};
use netprobe_common::{layout::KernelLayout, stats};

/// Filled in by the loader (`EbpfLoader::set_global`); the zeros here are never used.
#[no_mangle]
pub static LAYOUT: KernelLayout = KernelLayout {
    skb_dev: 0,
    skb_sk: 0,
    skb_head: 0,
    skb_network_header: 0,
    net_device_nd_net: 0,
    net_device_ifindex: 0,
    sock_net: 0,
    net_ns_inum: 0,
    kfree_skb_skb: 0,
    kfree_skb_location: 0,
    kfree_skb_reason: 0,
};

#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::LEN, 0);

/// One field of the layout. Volatile, so the compiler cannot fold in the zero placeholder;
/// the verifier then sees the frozen .rodata value as a constant.
macro_rules! offset {
    ($field:ident) => {
        $crate::kernel::load_offset(&raw const $crate::kernel::LAYOUT.$field)
    };
}
pub(crate) use offset;

#[inline(always)]
pub fn load_offset(field: *const u32) -> u64 {
    unsafe { core::ptr::read_volatile(field) as u64 }
}

pub fn bump(index: u32) {
    if let Some(v) = STATS.get_ptr_mut(index) {
        // Per-CPU slot, and tracing programs do not nest on one CPU: no atomic needed.
        unsafe { *v += 1 };
    }
}

/// Reads a `T` at `base + off`; a failed read counts as a read error and yields `T::default()`.
#[inline(always)]
pub fn read<T: Default>(base: u64, off: u64) -> T {
    match unsafe { bpf_probe_read_kernel((base + off) as *const T) } {
        Ok(v) => v,
        Err(_) => {
            bump(stats::READ_ERRORS);
            T::default()
        }
    }
}

/// Inode of a `struct net *`, 0 for NULL.
#[inline(always)]
pub fn net_inum(net: u64) -> u32 {
    if net == 0 {
        0
    } else {
        read::<u32>(net, offset!(net_ns_inum))
    }
}
