//! The unit syntax used everywhere a person types a value: durations ("10s",
//! "5ms"), rates ("200/s", "12000/min") and sizes ("4KB", "1MB"). Each has a
//! parser with a one-line error and a formatter that the parser reads back.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};
use thiserror::Error;

/// A value that does not read as its unit.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("invalid duration {value:?}: {detail} (examples: 500ms, 10s, 2m, 1h)")]
    Duration { value: String, detail: &'static str },
    #[error("invalid rate {value:?}: {detail} (examples: 200/s, 12000/min)")]
    Rate { value: String, detail: &'static str },
    #[error("invalid size {value:?}: {detail} (examples: 512B, 4KB, 1MB)")]
    Size { value: String, detail: &'static str },
}

/// Parse "500ms", "10s", "1.5s", "2m", "1h" (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let err = |detail| UnitError::Duration { value: text.to_string(), detail };
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(if t.starts_with('-') { err("must not be negative") } else { err("missing number") });
    }
    let value: f64 = num.parse().map_err(|_| err("not a number"))?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(err("unknown unit")),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 1e9 {
        return Err(err("too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Format a duration the way [`parse_duration`] reads it ("10s", "5ms", "1.5s").
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}us", d.as_micros())
    } else if !ms.is_multiple_of(1000) {
        if ms > 1000 { format!("{}s", d.as_secs_f64()) } else { format!("{ms}ms") }
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Parse an open-loop rate: "200/s", "200", "1.5/s", "12000/min", "60/h".
pub fn parse_rate(text: &str) -> Result<f64, UnitError> {
    let err = |detail| UnitError::Rate { value: text.to_string(), detail };
    let t = text.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (t, "s"),
    };
    let scale = match per {
        "s" | "sec" | "second" => 1.0,
        "min" | "m" => 1.0 / 60.0,
        "h" | "hour" => 1.0 / 3600.0,
        _ => return Err(err("expected N/s, N/min or N/h")),
    };
    match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n * scale),
        _ => Err(err("must be a positive number per second, minute or hour")),
    }
}

/// An open-loop rate for people: "40/s", "12.5/s", "0.011/s".
pub fn format_rate(rate: f64) -> String {
    let text = format!("{rate:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}/s")
}

/// Parse a size: "512", "512B", "4KB", "1.5MB", "1GB" (decimal: 1KB = 1000 bytes).
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let err = |detail| UnitError::Size { value: text.to_string(), detail };
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(err("missing number"));
    }
    let value: f64 = num.parse().map_err(|_| err("not a number"))?;
    let scale = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        _ => return Err(err("unknown unit")),
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes > 1e12 {
        return Err(err("too large"));
    }
    Ok(bytes.round() as u64)
}

/// Format a size the way [`parse_bytes`] reads it ("512B", "4KB", "1.5MB").
pub fn format_bytes(n: u64) -> String {
    let fmt = |v: f64, unit: &str| {
        let text = format!("{v:.2}");
        format!("{}{unit}", text.trim_end_matches('0').trim_end_matches('.'))
    };
    match n {
        0..1_000 => format!("{n}B"),
        1_000..1_000_000 => fmt(n as f64 / 1e3, "KB"),
        1_000_000..1_000_000_000 => fmt(n as f64 / 1e6, "MB"),
        _ => fmt(n as f64 / 1e9, "GB"),
    }
}

/// A latency in microseconds as milliseconds with one decimal ("12.3ms"),
/// or "-" for none.
pub fn format_latency_us(us: u64) -> String {
    if us == 0 { "-".into() } else { format!("{:.1}ms", us as f64 / 1000.0) }
}

/// Serde adapter that stores durations as text ("10s").
pub mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for optional durations as text.
pub mod opt_duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| parse_duration(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        for (text, d) in [
            ("10s", Duration::from_secs(10)),
            ("5ms", Duration::from_millis(5)),
            ("1.5s", Duration::from_millis(1500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("3", Duration::from_secs(3)),
            ("250us", Duration::from_micros(250)),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text}");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "round trip {text}");
        }
        for bad in ["", "-5s", "ten", "5 parsecs", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_parse_and_format() {
        assert_eq!(parse_rate("200/s"), Ok(200.0));
        assert_eq!(parse_rate("40"), Ok(40.0));
        assert_eq!(parse_rate("120/min"), Ok(2.0));
        assert!(parse_rate("0/s").is_err() && parse_rate("fast").is_err() && parse_rate("5/week").is_err());
        assert_eq!(format_rate(40.0), "40/s");
        assert_eq!(format_rate(12.5), "12.5/s");
        assert_eq!(format_rate(40.0 / 3600.0), "0.011/s");
    }

    #[test]
    fn sizes_parse_and_format() {
        for (text, n) in [("512", 512), ("512B", 512), ("4KB", 4000), ("1.5MB", 1_500_000), ("1mb", 1_000_000)] {
            assert_eq!(parse_bytes(text), Ok(n), "{text}");
        }
        for n in [0, 999, 1000, 4096, 1_500_000, 2_000_000_000] {
            assert_eq!(parse_bytes(&format_bytes(n)).map(|b| b.abs_diff(n) <= n / 100), Ok(true), "{n}");
        }
        assert_eq!(format_bytes(4000), "4KB");
        for bad in ["", "x", "5 parsecs", "-1KB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
