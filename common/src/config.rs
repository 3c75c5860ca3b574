//! Run configuration: named profiles (shipped as TOML data), command-line
//! overrides, validation, and the duration syntax used everywhere ("10s", "5ms").

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// The profiles shipped with the tool (`common/profiles.toml`).
pub const BUILTIN_PROFILES: &str = include_str!("../profiles.toml");

/// Name of the reference scenario: fan out N activities, then join.
pub const SCENARIO_FANOUT: &str = "fanout";

/// A configuration problem the user must fix.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("unknown profile {name:?} (known: {known})")]
    UnknownProfile { name: String, known: String },
    #[error("profile file does not parse: {0}")]
    Parse(String),
    #[error("invalid {option} {value}: {detail}")]
    InvalidOption { option: &'static str, value: String, detail: &'static str },
    #[error("invalid duration {value:?}: {detail} (examples: 500ms, 10s, 2m, 1h)")]
    InvalidDuration { value: String, detail: &'static str },
}

/// One named load profile as stored in TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub max_concurrent: u64,
    #[serde(with = "duration_text")]
    pub duration: Duration,
    pub tasks_per_instance: u32,
    #[serde(with = "duration_text")]
    pub activity_delay: Duration,
    pub orch_concurrency: u32,
    pub worker_concurrency: u32,
    #[serde(default = "default_runtimes")]
    pub runtimes_per_agent: u32,
    #[serde(default = "default_poll_interval", with = "duration_text")]
    pub poll_interval: Duration,
    #[serde(default = "default_drain_timeout", with = "duration_text")]
    pub drain_timeout: Duration,
    #[serde(default = "default_min_orch_per_sec")]
    pub min_orch_per_sec: f64,
}

fn default_runtimes() -> u32 {
    1
}
fn default_poll_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_min_orch_per_sec() -> f64 {
    1.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    profile: Vec<Profile>,
}

/// Parse a profiles document (`[[profile]]` tables).
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, ConfigError> {
    let file: ProfileFile = toml::from_str(text).map_err(|e| ConfigError::Parse(e.message().to_string()))?;
    for p in &file.profile {
        p.validate()?;
    }
    Ok(file.profile)
}

/// The built-in profiles, in the order they are documented.
pub fn builtin_profiles() -> Vec<Profile> {
    // The shipped file is checked by a unit test; a parse failure here is a
    // build defect, not user input.
    parse_profiles(BUILTIN_PROFILES).unwrap_or_default()
}

/// Look a built-in profile up by name.
pub fn find_profile(name: &str) -> Result<Profile, ConfigError> {
    let all = builtin_profiles();
    match all.iter().find(|p| p.name == name) {
        Some(p) => Ok(p.clone()),
        None => Err(ConfigError::UnknownProfile {
            name: name.to_string(),
            known: all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Command-line overrides of profile fields; `None` keeps the profile's value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub max_concurrent: Option<u64>,
    pub duration: Option<Duration>,
    pub tasks_per_instance: Option<u32>,
    pub activity_delay: Option<Duration>,
    pub orch_concurrency: Option<u32>,
    pub worker_concurrency: Option<u32>,
    pub runtimes_per_agent: Option<u32>,
    pub poll_interval: Option<Duration>,
    pub drain_timeout: Option<Duration>,
    pub min_orch_per_sec: Option<f64>,
}

impl Profile {
    /// Apply overrides and validate the result.
    pub fn with_overrides(mut self, o: &Overrides) -> Result<Profile, ConfigError> {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { self.$f = v; } )* };
        }
        set!(
            max_concurrent,
            duration,
            tasks_per_instance,
            activity_delay,
            orch_concurrency,
            worker_concurrency,
            runtimes_per_agent,
            poll_interval,
            drain_timeout,
            min_orch_per_sec
        );
        self.validate()?;
        Ok(self)
    }

    /// Check every field is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |option, value: String, detail| Err(ConfigError::InvalidOption { option, value, detail });
        if self.max_concurrent == 0 {
            return bad("max_concurrent", "0".into(), "must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("duration", "0s".into(), "must be positive");
        }
        if self.tasks_per_instance == 0 {
            return bad("tasks_per_instance", "0".into(), "must be at least 1");
        }
        if self.orch_concurrency == 0 || self.worker_concurrency == 0 {
            return bad(
                "dispatcher concurrency",
                format!("{}:{}", self.orch_concurrency, self.worker_concurrency),
                "both must be at least 1",
            );
        }
        if self.runtimes_per_agent == 0 {
            return bad("runtimes_per_agent", "0".into(), "must be at least 1");
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval", "0s".into(), "must be positive (it is the idle sleep of each dispatcher)");
        }
        if self.drain_timeout.is_zero() {
            return bad("drain_timeout", "0s".into(), "must be positive");
        }
        if !(self.min_orch_per_sec.is_finite() && self.min_orch_per_sec >= 0.0) {
            return bad("min_orch_per_sec", self.min_orch_per_sec.to_string(), "must be a non-negative number");
        }
        Ok(())
    }

    /// "N:M" dispatcher notation.
    pub fn dispatchers(&self) -> String {
        format!("{}:{}", self.orch_concurrency, self.worker_concurrency)
    }
}

/// Parse "500ms", "10s", "1.5s", "2m", "1h" (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let err = |detail| ConfigError::InvalidDuration { value: text.to_string(), detail };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_match_the_spec() {
        let all = parse_profiles(BUILTIN_PROFILES).expect("shipped profiles parse");
        let names: Vec<_> = all.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["light", "standard", "production", "high-concurrency"]);
        let light = find_profile("light").expect("light");
        assert_eq!((light.max_concurrent, light.duration, light.tasks_per_instance), (10, Duration::from_secs(5), 3));
        assert_eq!((light.activity_delay, light.dispatchers()), (Duration::from_millis(5), "2:2".to_string()));
        let std = find_profile("standard").expect("standard");
        assert_eq!((std.max_concurrent, std.duration, std.tasks_per_instance), (20, Duration::from_secs(10), 5));
        let prod = find_profile("production").expect("production");
        assert_eq!(
            (prod.max_concurrent, prod.duration, prod.dispatchers()),
            (50, Duration::from_secs(60), "4:4".into())
        );
        assert_eq!(find_profile("high-concurrency").expect("hc").min_orch_per_sec, 2.0);
        assert_eq!(light.min_orch_per_sec, 1.0);
        assert_eq!(light.runtimes_per_agent, 1);
    }

    #[test]
    fn unknown_profile_names_the_known_ones() {
        let e = find_profile("nope").expect_err("unknown");
        assert_eq!(e.to_string(), "unknown profile \"nope\" (known: light, standard, production, high-concurrency)");
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_key_named() {
        let text = "[[profile]]\nname='x'\nmax_concurrent=1\nduration='1s'\ntasks_per_instance=1\nactivity_delay='1ms'\norch_concurrency=1\nworker_concurrency=1\nmax_concurent=5\n";
        let e = parse_profiles(text).expect_err("typo");
        assert!(e.to_string().contains("max_concurent"), "{e}");
    }

    #[test]
    fn overrides_apply_and_are_validated() {
        let base = find_profile("light").expect("light");
        let p = base
            .clone()
            .with_overrides(&Overrides {
                max_concurrent: Some(7),
                duration: Some(Duration::from_secs(2)),
                ..Default::default()
            })
            .expect("valid");
        assert_eq!((p.max_concurrent, p.duration), (7, Duration::from_secs(2)));
        for bad in [
            Overrides { max_concurrent: Some(0), ..Default::default() },
            Overrides { duration: Some(Duration::ZERO), ..Default::default() },
            Overrides { orch_concurrency: Some(0), ..Default::default() },
            Overrides { min_orch_per_sec: Some(f64::NAN), ..Default::default() },
        ] {
            assert!(base.clone().with_overrides(&bad).is_err(), "{bad:?}");
        }
    }

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
}
