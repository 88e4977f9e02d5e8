//! JSON written straight into a byte buffer, for records printed once per event (`watch`):
//! serde_json escapes every key and, through a flattened or tagged type, goes through its map
//! machinery; here keys are literals, values go through serde_json or, where its way showed
//! in the profile, are written directly.

use std::{io::Write, net::IpAddr};

use serde::Serialize;

/// Appends `,"key":value`. `key` must need no escaping.
#[inline]
pub fn field(out: &mut Vec<u8>, key: &str, value: &(impl Serialize + ?Sized)) {
    self::key(out, key);
    // Strings, integers and addresses into a Vec: serde_json has no error to give.
    serde_json::to_writer(&mut *out, value).expect("a plain value into a Vec");
}

/// Appends `,"key":"value"`, or `null`, without escaping: for strings of netprobe's own
/// making (times, hex, protocol names), where escaping finds nothing to do but its scan was
/// a tenth of watch's CPU.
#[inline]
pub fn plain(out: &mut Vec<u8>, key: &str, value: Option<&str>) {
    self::key(out, key);
    match value {
        Some(v) => {
            debug_assert!(!v.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'), "{v:?}");
            out.push(b'"');
            out.extend_from_slice(v.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `,"key":"address"`, or `null`; IPv4 digit by digit (serde's Display and escaping
/// of the two addresses were a tenth of watch's CPU), IPv6 through Display.
pub fn ip(out: &mut Vec<u8>, key: &str, value: Option<IpAddr>) {
    self::key(out, key);
    match value {
        Some(IpAddr::V4(a)) => {
            out.push(b'"');
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
            out.push(b'"');
        }
        Some(a @ IpAddr::V6(_)) => write!(out, "\"{a}\"").expect("into a Vec"),
        None => out.extend_from_slice(b"null"),
    }
}

#[inline]
fn key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}
