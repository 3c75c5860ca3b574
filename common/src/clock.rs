//! A process's wall clock, shiftable while it runs: the `clock-skew` fault.
//!
//! An agent started with `--clock-control` runs under Debian's libfaketime
//! (it sets `LD_PRELOAD` and re-executes itself). libfaketime reads the
//! offset from a control file the agent owns ([`control_dir`], named by the
//! process id, so a launcher can remove it after an agent it killed), at
//! most once a second. Monotonic clocks stay true, so timers and timeouts
//! are unaffected; only the wall clock (what duroxide-pg leases compare in
//! some releases) moves.

use std::path::PathBuf;
use std::time::Duration;

/// Where Debian (and most distributions) put libfaketime; `LOADGEN_LIBFAKETIME` overrides.
const SEARCH: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The environment variable naming a libfaketime other than the usual places.
pub const LIBFAKETIME_ENV: &str = "LOADGEN_LIBFAKETIME";

/// What a missing libfaketime costs, in one line.
pub const MISSING: &str =
    "shifting an agent's clock needs libfaketime (Debian package libfaketime; or set LOADGEN_LIBFAKETIME to its .so)";

/// The installed libfaketime, if any.
pub fn libfaketime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(LIBFAKETIME_ENV) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    SEARCH.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// The directory holding process `pid`'s control file.
pub fn control_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("loadgen-clock-{pid}"))
}

/// An offset as libfaketime reads it: `+15.000000`, `-2.500000` (seconds).
pub fn offset_text(offset_us: i64) -> String {
    let sign = if offset_us < 0 { '-' } else { '+' };
    let abs = offset_us.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// The largest offset a fault may set: beyond it, certificates and
/// everything else that reads the date would break before the provider does.
pub const LARGEST_OFFSET: Duration = Duration::from_secs(3600);

/// A signed offset as people type it: `15s`, `+15s`, `-2.5s`, `-500ms`.
pub fn parse_offset(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (neg, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let d = crate::units::parse_duration(rest)
        .map_err(|_| format!("offset {text:?} is not a signed duration such as +15s, -2.5s or -500ms"))?;
    if d.is_zero() || d > LARGEST_OFFSET {
        return Err(format!("offset {text:?} must be nonzero and at most 1h either way"));
    }
    let us = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    Ok(if neg { -us } else { us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_and_print_as_libfaketime_takes_them() {
        assert_eq!(parse_offset("15s"), Ok(15_000_000));
        assert_eq!(parse_offset("+15s"), Ok(15_000_000));
        assert_eq!(parse_offset("-2.5s"), Ok(-2_500_000));
        assert_eq!(parse_offset("-500ms"), Ok(-500_000));
        for bad in ["", "0s", "+2h", "soon", "--1s"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(offset_text(15_000_000), "+15.000000");
        assert_eq!(offset_text(-2_500_000), "-2.500000");
        assert_eq!(offset_text(0), "+0.000000");
    }
}
