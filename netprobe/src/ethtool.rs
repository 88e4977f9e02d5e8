//! A network interface's driver statistics, what `ethtool -S` prints, read with the
//! SIOCETHTOOL ioctl in the calling thread's netns. Driver-private counters have no netlink
//! form: ETHTOOL_MSG_STATS_GET carries only the standard groups (MAC, PHY, RMON).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// From linux/ethtool.h (UAPI).
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

/// The statistics of `interface` whose names `keep` takes, name and value, in the driver's
/// order; empty when its driver keeps none (EOPNOTSUPP, as on `lo`). The values are not read
/// when no name is kept.
pub fn stats(interface: &str, keep: impl Fn(&str) -> bool) -> io::Result<Vec<(String, u64)>> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let n = match count(&sock, interface) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        other => other?,
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    // struct ethtool_gstrings: cmd, string_set, len, then len names of ETH_GSTRING_LEN bytes.
    let mut names = vec![0u8; 12 + n * ETH_GSTRING_LEN];
    for (at, v) in [(0, ETHTOOL_GSTRINGS), (4, ETH_SS_STATS), (8, n as u32)] {
        names[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    ioctl(&sock, interface, names.as_mut_ptr())?;
    let names: Vec<String> = names[12..]
        .chunks(ETH_GSTRING_LEN)
        .map(|name| {
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            String::from_utf8_lossy(&name[..end]).into_owned()
        })
        .collect();
    if !names.iter().any(|n| keep(n)) {
        return Ok(Vec::new());
    }
    // struct ethtool_stats: cmd, n_stats, then n_stats u64 values.
    let mut values = vec![0u64; 1 + n];
    values[0] = pair(ETHTOOL_GSTATS, n as u32);
    ioctl(&sock, interface, values.as_mut_ptr().cast())?;
    // The kernel says how many it wrote.
    let got = (halves(values[0]).1 as usize).min(n);
    Ok(names
        .into_iter()
        .zip(values[1..].iter().copied())
        .take(got)
        .filter(|(n, _)| keep(n))
        .collect())
}

/// How many statistics the driver has (ETHTOOL_GSSET_INFO for the stats string set).
fn count(sock: &OwnedFd, interface: &str) -> io::Result<usize> {
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), then one u32 per set asked for.
    let mut info = [pair(ETHTOOL_GSSET_INFO, 0), 1 << ETH_SS_STATS, 0];
    ioctl(sock, interface, info.as_mut_ptr().cast())?;
    // The mask comes back with the sets the driver has.
    if info[1] & (1 << ETH_SS_STATS) == 0 {
        return Ok(0);
    }
    Ok(halves(info[2]).0 as usize)
}

/// Two consecutive u32 fields as the u64 they occupy.
fn pair(first: u32, second: u32) -> u64 {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&first.to_ne_bytes());
    b[4..].copy_from_slice(&second.to_ne_bytes());
    u64::from_ne_bytes(b)
}

fn halves(v: u64) -> (u32, u32) {
    let b = v.to_ne_bytes();
    (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), u32::from_ne_bytes([b[4], b[5], b[6], b[7]]))
}

fn ioctl(sock: &OwnedFd, interface: &str, data: *mut u8) -> io::Result<()> {
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if interface.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(interface.bytes()) {
        *d = s as libc::c_char;
    }
    req.ifr_ifru.ifru_data = data.cast();
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
