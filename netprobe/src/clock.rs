//! BPF timestamps are CLOCK_MONOTONIC; users read wall-clock time.

pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns, taken once at start.
    offset_ns: i128,
}

impl Clock {
    pub fn now() -> Self {
        Self { offset_ns: read(libc::CLOCK_REALTIME) as i128 - read(libc::CLOCK_MONOTONIC) as i128 }
    }

    /// Now, on the clock BPF timestamps use.
    pub fn monotonic_now() -> u64 {
        read(libc::CLOCK_MONOTONIC)
    }

    /// A clock as it was when `monotonic_ns` was `realtime_ns` (a recording's).
    pub fn fixed(monotonic_ns: u64, realtime_ns: u64) -> Self {
        Self { offset_ns: realtime_ns as i128 - monotonic_ns as i128 }
    }

    pub fn unix_ns(&self, monotonic_ns: u64) -> u64 {
        (monotonic_ns as i128 + self.offset_ns).max(0) as u64
    }

    /// RFC 3339 UTC with microseconds. Digits are placed by hand: `watch` formats one per
    /// event, and `format!` made this a quarter of its CPU.
    pub fn wall(&self, monotonic_ns: u64) -> String {
        let ns = self.unix_ns(monotonic_ns);
        let secs = ns / 1_000_000_000;
        let (days, rem) = (secs / 86400, secs % 86400);
        let (y, m, d) = civil_from_days(days as i64);
        let mut s = *b"0000-00-00T00:00:00.000000Z";
        for (at, width, n) in [
            (0, 4, y as u64),
            (5, 2, m.into()),
            (8, 2, d.into()),
            (11, 2, rem / 3600),
            (14, 2, rem % 3600 / 60),
            (17, 2, rem % 60),
            (20, 6, ns % 1_000_000_000 / 1000),
        ] {
            let mut n = n;
            for b in s[at..at + width].iter_mut().rev() {
                *b = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        // ASCII digits and separators only.
        String::from_utf8(s.to_vec()).expect("ASCII")
    }
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        let c = Clock::fixed(0, 0);
        assert_eq!(c.wall(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(c.wall(951_782_400_123_456_789), "2000-02-29T00:00:00.123456Z");
        assert_eq!(c.wall(1_798_761_599_999_999_999), "2026-12-31T23:59:59.999999Z");
    }
}
