//! Shared by the privileged test files.

/// These tests load BPF programs and create namespaces; unprivileged they must fail loudly,
/// not pass.
pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "privileged integration test: run as root (the unit tests are `cargo test -p netprobe`)"
    );
}
