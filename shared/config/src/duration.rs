//! Prometheus durations (`1h30m`, `15s`, `100ms`, `1d`, `1w`, `1y`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written the way Prometheus writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(Duration);

impl PromDuration {
    /// A whole number of seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    /// A whole number of milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// The duration.
    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// Milliseconds.
    pub fn as_millis(self) -> i64 {
        self.0.as_millis() as i64
    }

    /// Parses `[0-9]+(ms|s|m|h|d|w|y)` units in descending order, like `model.ParseDuration`.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_prom_duration_ms(s).map(|ms| Self(Duration::from_millis(ms)))
    }
}

/// Parses a Prometheus duration string into milliseconds.
pub fn parse_prom_duration_ms(s: &str) -> Result<u64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit = 0usize; // index into UNITS + 1 of the last unit used; units must descend
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        let n: u64 = s[start..i]
            .parse()
            .map_err(|_| format!("not a valid duration string: {s:?}"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!("not a valid duration string: {s:?}"));
        };
        if pos < last_unit {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        last_unit = pos + 1;
        total = n
            .checked_mul(UNITS[pos].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {s:?}"))?;
    }
    Ok(total)
}

impl fmt::Display for PromDuration {
    /// Formats like Prometheus (`1h30m`, `15s`, `0s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis() as u64;
        if ms == 0 {
            return write!(f, "0s");
        }
        for (unit, size) in [
            ("y", 31_536_000_000u64),
            ("w", 604_800_000),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PromDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_prom_duration_ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_prom_duration_ms("100ms").unwrap(), 100);
        assert_eq!(parse_prom_duration_ms("1d").unwrap(), 86_400_000);
        assert!(parse_prom_duration_ms("30m1h").is_err());
        assert!(parse_prom_duration_ms("1.5h").is_err());
        assert!(parse_prom_duration_ms("5").is_err());
        assert_eq!(PromDuration::parse("90m").unwrap().to_string(), "1h30m");
    }
}
