//! The running kernel's build configuration, where the kernel or its distribution exposes
//! it: /proc/config.gz (CONFIG_IKCONFIG_PROC), else /boot/config-<release>; the places
//! libbpf reads for `__kconfig` externs. Only what BTF cannot tell is taken from it.

use std::{fs, io::Read};

/// CONFIG_HZ: the jiffies per second that TCP's socket time stamps count in.
pub fn hz() -> Option<u32> {
    value(&text()?, "CONFIG_HZ")?.parse().ok().filter(|hz| *hz > 0)
}

fn text() -> Option<String> {
    if let Ok(gz) = fs::File::open("/proc/config.gz") {
        let mut s = String::new();
        if flate2::read::GzDecoder::new(gz).read_to_string(&mut s).is_ok() {
            return Some(s);
        }
    }
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()
}

/// `KEY=value` of a kernel config text.
fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_key_and_not_its_longer_namesakes() {
        let text =
            "# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_HZ_PERIODIC=n\n";
        assert_eq!(value(text, "CONFIG_HZ"), Some("250"));
        assert_eq!(value(text, "CONFIG_HZ_250"), Some("y"));
        assert_eq!(value(text, "CONFIG_NOPE"), None);
    }
}
