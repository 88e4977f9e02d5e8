//! `--duration` values: a number and a unit, e.g. `500ms`, `10s`, `2m`, `1h`.

use std::time::Duration;

pub fn parse(text: &str) -> Result<Duration, String> {
    let d = parse_or_zero(text)?;
    if d.is_zero() {
        return Err(format!("`{}`: a duration must be greater than zero", text.trim()));
    }
    Ok(d)
}

/// A duration that may be zero: a gap that may be none (`--merge-gap 0ms`).
pub fn parse_or_zero(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: expected e.g. 500ms, 10s, 2m, 1h"))?;
    let secs = match unit {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{unit}` is not a unit: use us, ms, s, m or h (e.g. 10s)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse("ten seconds").is_err());
        assert!(parse("10 parsecs").unwrap_err().contains("not a unit"));
        assert!(parse("0s").is_err());
        assert_eq!(parse_or_zero("0ms"), Ok(Duration::ZERO));
        assert!(parse_or_zero("inf").is_err());
        assert!(parse("").is_err());
    }
}
