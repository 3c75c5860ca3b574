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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Connection-pool size of every provider in each agent process
    /// (`DUROXIDE_PG_POOL_MAX`); `None` leaves the agents' own setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_max: Option<u32>,
    /// Artificial one-way delay between each agent's runtimes and Postgres
    /// (a relay on the agent's loopback); 0 for none.
    #[serde(default, with = "duration_text", skip_serializing_if = "Duration::is_zero")]
    pub db_latency: Duration,
    /// A suite: one run per dispatcher combination ("1:1", "2:2", ...), each
    /// on a fresh schema, replacing orch/worker concurrency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suite: Vec<String>,
    /// Gate: merged end-to-end p99 at most this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Gate: at most this many orchestrations may fail or stay unfinished
    /// (default 0: 100% success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<u64>,
    /// Warning threshold on each agent's memory growth (MB per minute, from a
    /// least-squares fit after warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_growth_mb_per_min: Option<f64>,
    /// duroxide's orchestrator lock timeout (default 5 s): how long a turn
    /// held by a dead runtime stays locked.
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub orchestrator_lock_timeout: Option<Duration>,
    /// duroxide's worker lock timeout (default 30 s): how long an activity
    /// held by a dead runtime stays locked.
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub worker_lock_timeout: Option<Duration>,
    /// Open loop: start this many orchestrations per second cluster-wide on a
    /// schedule, whatever the system's latency (`None`: closed loop, keeping
    /// `max_concurrent` in flight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open loop: how starts are spaced ("constant" or "poisson").
    #[serde(default, skip_serializing_if = "Arrival::is_constant")]
    pub arrival: Arrival,
    /// Open loop: cap on orchestrations in flight cluster-wide; a start due
    /// while the cap is reached is dropped (and counted). Default: a minute
    /// of arrivals, at least 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
}

/// Spacing of open-loop starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced: one start every 1/rate seconds.
    #[default]
    Constant,
    /// Exponentially distributed gaps with mean 1/rate (independent arrivals).
    Poisson,
}

impl Arrival {
    fn is_constant(&self) -> bool {
        *self == Arrival::Constant
    }

    /// The name used on the command line and in reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
        }
    }
}

impl std::str::FromStr for Arrival {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(Arrival::Constant),
            "poisson" => Ok(Arrival::Poisson),
            other => Err(format!("unknown arrival {other:?}: expected constant or poisson")),
        }
    }
}

impl Profile {
    /// The cluster-wide in-flight cap of an open-loop run.
    pub fn open_loop_cap(&self) -> Option<u64> {
        self.rate.map(|r| self.max_in_flight.unwrap_or(((r * 60.0).ceil() as u64).max(100)))
    }
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

/// The built-in profiles plus those of a profile file (which replace built-in
/// ones of the same name), in listing order.
pub fn all_profiles(file_text: Option<&str>) -> Result<Vec<Profile>, ConfigError> {
    let mut all = builtin_profiles();
    if let Some(text) = file_text {
        for p in parse_profiles(text)? {
            match all.iter_mut().find(|q| q.name == p.name) {
                Some(q) => *q = p,
                None => all.push(p),
            }
        }
    }
    Ok(all)
}

/// Pick a profile: by `name` if given; else the only profile of the file if
/// it has exactly one; else `light`.
pub fn select_profile(name: Option<&str>, file_text: Option<&str>) -> Result<Profile, ConfigError> {
    let all = all_profiles(file_text)?;
    let name = match (name, file_text) {
        (Some(n), _) => n.to_string(),
        (None, Some(text)) => match parse_profiles(text)?.as_slice() {
            [only] => only.name.clone(),
            _ => "light".to_string(),
        },
        (None, None) => "light".to_string(),
    };
    match all.iter().find(|p| p.name == name) {
        Some(p) => Ok(p.clone()),
        None => Err(ConfigError::UnknownProfile {
            name,
            known: all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Look a built-in profile up by name.
pub fn find_profile(name: &str) -> Result<Profile, ConfigError> {
    select_profile(Some(name), None)
}

/// Parse a dispatcher combination "N:M" (orchestration:worker slots).
pub fn parse_dispatchers(text: &str) -> Result<(u32, u32), ConfigError> {
    let bad = || ConfigError::InvalidOption {
        option: "dispatcher combination",
        value: text.to_string(),
        detail: "expected N:M with N, M >= 1 (e.g. 2:2)",
    };
    let (o, w) = text.trim().split_once(':').ok_or_else(bad)?;
    let (o, w): (u32, u32) = (o.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
    if o == 0 || w == 0 {
        return Err(bad());
    }
    Ok((o, w))
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
    pub pool_max: Option<u32>,
    pub db_latency: Option<Duration>,
    pub suite: Option<Vec<String>>,
    pub p99_ms: Option<f64>,
    pub max_failed: Option<u64>,
    pub rss_growth_mb_per_min: Option<f64>,
    pub orchestrator_lock_timeout: Option<Duration>,
    pub worker_lock_timeout: Option<Duration>,
    pub rate: Option<f64>,
    pub arrival: Option<Arrival>,
    pub max_in_flight: Option<u64>,
}

/// An open-loop rate for people: "40/s", "12.5/s", "0.011/s".
pub fn format_rate(rate: f64) -> String {
    let text = format!("{rate:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}/s")
}

/// Parse an open-loop rate: "200/s", "200", "1.5/s", "12000/min".
pub fn parse_rate(text: &str) -> Result<f64, ConfigError> {
    let t = text.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (t, "s"),
    };
    let scale = match per {
        "s" | "sec" | "second" => 1.0,
        "min" | "m" => 1.0 / 60.0,
        "h" | "hour" => 1.0 / 3600.0,
        _ => {
            return Err(ConfigError::InvalidOption {
                option: "rate",
                value: text.to_string(),
                detail: "expected N/s, N/min or N/h (e.g. 200/s)",
            });
        }
    };
    match num.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n * scale),
        _ => Err(ConfigError::InvalidOption {
            option: "rate",
            value: text.to_string(),
            detail: "must be a positive number per second, minute or hour (e.g. 200/s)",
        }),
    }
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
            min_orch_per_sec,
            db_latency
        );
        if let Some(v) = &o.suite {
            self.suite = v.clone();
        }
        macro_rules! set_opt {
            ($($f:ident),*) => { $( if o.$f.is_some() { self.$f = o.$f; } )* };
        }
        set_opt!(
            pool_max,
            p99_ms,
            max_failed,
            rss_growth_mb_per_min,
            orchestrator_lock_timeout,
            worker_lock_timeout,
            rate,
            max_in_flight
        );
        if let Some(a) = o.arrival {
            self.arrival = a;
        }
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
        if self.pool_max == Some(0) {
            return bad("pool_max", "0".into(), "must be at least 1");
        }
        for (option, v) in [("p99_ms", self.p99_ms), ("rss_growth_mb_per_min", self.rss_growth_mb_per_min)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return bad(option, v.to_string(), "must be a positive number");
            }
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= 1_000_000.0)
        {
            return bad("rate", r.to_string(), "must be a positive number of starts per second (at most 1000000)");
        }
        if self.max_in_flight == Some(0) {
            return bad("max_in_flight", "0".into(), "must be at least 1");
        }
        if self.db_latency > Duration::from_secs(10) {
            return bad("db_latency", format_duration(self.db_latency), "must be at most 10s");
        }
        for combo in &self.suite {
            parse_dispatchers(combo)?;
        }
        if let Some(t) = self.orchestrator_lock_timeout
            && !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&t)
        {
            return bad("orchestrator_lock_timeout", format_duration(t), "must be between 1s and 10m");
        }
        // duroxide refuses a worker lock longer than its session idle timeout (5 min).
        if let Some(t) = self.worker_lock_timeout
            && !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&t)
        {
            return bad("worker_lock_timeout", format_duration(t), "must be between 1s and 5m");
        }
        Ok(())
    }

    /// "N:M" dispatcher notation.
    pub fn dispatchers(&self) -> String {
        format!("{}:{}", self.orch_concurrency, self.worker_concurrency)
    }

    /// The runs this profile stands for: itself, or one per suite combination
    /// (the dispatchers set, and `suite` narrowed to that one combination so
    /// the run still says it belongs to a suite).
    pub fn expand(&self) -> Result<Vec<Profile>, ConfigError> {
        if self.suite.is_empty() {
            return Ok(vec![self.clone()]);
        }
        self.suite
            .iter()
            .map(|combo| {
                let (o, w) = parse_dispatchers(combo)?;
                Ok(Profile { orch_concurrency: o, worker_concurrency: w, suite: vec![combo.clone()], ..self.clone() })
            })
            .collect()
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
        assert_eq!(
            names,
            ["light", "standard", "production", "high-concurrency", "pool-stress", "soak", "high-latency", "suite"]
        );
        let get = |n| find_profile(n).expect(n);
        // (max_concurrent, duration s, tasks, delay ms, dispatchers, min orch/s) from the spec's table
        let table = [
            ("light", 10, 5, 3, 5, "2:2", 1.0),
            ("standard", 20, 10, 5, 10, "2:2", 1.0),
            ("production", 50, 60, 10, 10, "4:4", 1.0),
            ("high-concurrency", 50, 30, 10, 10, "4:4", 2.0),
            ("pool-stress", 30, 10, 5, 10, "4:4", 1.0),
            ("soak", 20, 300, 5, 10, "2:2", 1.5),
            ("high-latency", 10, 20, 5, 10, "2:2", 0.5),
            ("suite", 20, 10, 5, 10, "2:2", 1.0),
        ];
        for (name, mc, secs, tasks, delay, disp, min) in table {
            let p = get(name);
            assert_eq!(p.max_concurrent, mc, "{name}");
            assert_eq!(p.duration, Duration::from_secs(secs), "{name}");
            assert_eq!(p.tasks_per_instance, tasks, "{name}");
            assert_eq!(p.activity_delay, Duration::from_millis(delay), "{name}");
            assert_eq!(p.dispatchers(), disp, "{name}");
            assert_eq!(p.min_orch_per_sec, min, "{name}");
            assert_eq!(p.runtimes_per_agent, 1, "{name}");
        }
        assert_eq!(get("pool-stress").pool_max, Some(5));
        assert_eq!(get("high-latency").db_latency, Duration::from_millis(50));
        assert!(get("soak").rss_growth_mb_per_min.is_some());
        let suite: Vec<String> = get("suite").expand().expect("expand").iter().map(Profile::dispatchers).collect();
        assert_eq!(suite, ["1:1", "2:2", "4:4"]);
        assert_eq!(get("light").expand().expect("expand"), vec![get("light")]);
    }

    #[test]
    fn profile_files_add_and_replace_profiles() {
        let file = "[[profile]]\nname='mine'\nmax_concurrent=3\nduration='2s'\ntasks_per_instance=2\nactivity_delay='1ms'\norch_concurrency=1\nworker_concurrency=1\np99_ms=900.0\n";
        // The only profile of the file is picked when no name is given.
        let p = select_profile(None, Some(file)).expect("mine");
        assert_eq!((p.name.as_str(), p.max_concurrent, p.p99_ms), ("mine", 3, Some(900.0)));
        assert_eq!(select_profile(Some("standard"), Some(file)).expect("builtin").name, "standard");
        let replaced = file.replace("'mine'", "'light'");
        assert_eq!(select_profile(Some("light"), Some(&replaced)).expect("light").max_concurrent, 3);
        assert_eq!(all_profiles(Some(file)).expect("all").len(), 9);
        assert_eq!(select_profile(None, None).expect("default").name, "light");
        let e = select_profile(Some("x"), Some(file)).expect_err("unknown");
        assert!(e.to_string().contains("mine"), "{e}");
    }

    #[test]
    fn dispatcher_combinations_parse() {
        assert_eq!(parse_dispatchers("4:2"), Ok((4, 2)));
        for bad in ["4", "0:1", "1:0", "a:b", "1:2:3", ""] {
            assert!(parse_dispatchers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_profile_names_the_known_ones() {
        let e = find_profile("nope").expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "unknown profile \"nope\" (known: light, standard, production, high-concurrency, pool-stress, soak, high-latency, suite)"
        );
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
            Overrides { worker_lock_timeout: Some(Duration::from_secs(301)), ..Default::default() },
            Overrides { orchestrator_lock_timeout: Some(Duration::from_millis(10)), ..Default::default() },
        ] {
            assert!(base.clone().with_overrides(&bad).is_err(), "{bad:?}");
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
