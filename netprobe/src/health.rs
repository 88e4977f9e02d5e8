//! netprobe's own counters: what it could not see or keep.

/// The agent's own counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Health {
    pub lost_samples: u64,
    pub counter_overflow: u64,
    pub read_errors: u64,
    /// Invocations of netprobe's programs the kernel skipped because another BPF program was
    /// running on that CPU (bpf_prog_info recursion_misses, 5.12+): events not seen at all.
    #[serde(default)]
    pub skipped_invocations: u64,
}

/// A loaded program's recursion_misses, from BPF_OBJ_GET_INFO_BY_FD. aya 0.13 reads the
/// info but does not expose this field; kernels before 5.12 do not fill it (0).
pub fn recursion_misses(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;

    use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_info};
    // SAFETY: both are plain C structs the kernel fills; zero is their valid empty value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = std::mem::size_of::<bpf_prog_info>() as u32;
    attr.info.info = &mut info as *mut bpf_prog_info as u64;
    // SAFETY: `attr` points at `info`, which outlives the call; the kernel writes at most
    // `info_len` bytes into it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            &mut attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info.recursion_misses)
}
