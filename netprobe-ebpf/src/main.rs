//! netprobe's kernel programs. One module per hook family, named as on the user side.
#![no_std]
// Inline assembly for BPF (kernel::btf_arg).
#![feature(asm_experimental_arch)]
#![no_main]

mod bursts;
mod calls;
mod conntrack;
mod drops;
mod kernel;
mod linklocal;
mod ports;
mod probe;
mod softnet;
mod tcp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// GPL-compatible: bpf_probe_read_kernel and ring buffers are GPL-only helpers.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
