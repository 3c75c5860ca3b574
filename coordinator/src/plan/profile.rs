//! Named load profiles: shipped as TOML data (`coordinator/profiles.toml`),
//! added to or replaced by a user's file, overridden from the command line,
//! and validated once. A profile names its workload (`scenario` with
//! `[profile.options]`, or a weighted `mix`); the scenario checks its options.

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen_common::limits;
use loadgen_common::stages::StagePlan;

use loadgen_common::units::{UnitError, duration_text, format_duration, opt_duration_text};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

/// The profiles shipped with the tool.
pub const BUILTIN_PROFILES: &str = include_str!("../../profiles.toml");

/// The scenario a profile runs when it names none.
pub const DEFAULT_SCENARIO: &str = "fanout";

/// A configuration problem the user must fix.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("unknown profile {name:?} (known: {known})")]
    UnknownProfile { name: String, known: String },
    #[error("{file}:{line}:{column}: {message}")]
    Parse { file: String, line: usize, column: usize, message: String },
    #[error("invalid {option} {value}: {detail}")]
    InvalidOption { option: &'static str, value: String, detail: &'static str },
    #[error("invalid stages {value:?}: {detail}")]
    Stages { value: String, detail: String },
    #[error(transparent)]
    Unit(#[from] UnitError),
}

/// One named load profile as stored in TOML (and carried in every result).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Orchestrations kept in flight, cluster-wide (closed loop).
    pub max_concurrent: u64,
    #[serde(with = "duration_text")]
    pub duration: Duration,
    /// The scenario (see `coordinator scenarios`); default fanout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// The scenario's options (key = value; values may be numbers or text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "option_values")]
    pub options: BTreeMap<String, String>,
    /// A weighted mix instead of one scenario (scenario = weight); runs the
    /// `mixed` scenario, each instance's choice drawn from the run's seed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mix: BTreeMap<String, u32>,
    /// fanout's `tasks` option (kept under its old name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_per_instance: Option<u32>,
    /// fanout's `activity_delay` option (kept under its old name).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub activity_delay: Option<Duration>,
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
    /// Gate: merged headline p99 at most this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Gate: at most this many orchestrations may fail unexpectedly or stay
    /// unfinished (default 0: 100% success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed: Option<u64>,
    /// Judge the gates that can already be lost while the run goes, and stop
    /// every agent as soon as one is (`--abort-on-fail`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abort_on_fail: bool,
    /// Gate: every agent's wall clock within this of the coordinator's (read
    /// at its Hello; duroxide-pg's leases compare the runtimes' clocks).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub max_clock_offset: Option<Duration>,
    /// Warning threshold on each agent's memory growth (MB per minute, from a
    /// least-squares fit after warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_growth_mb_per_min: Option<f64>,
    /// duroxide's orchestrator lock timeout (default 5 s).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub orchestrator_lock_timeout: Option<Duration>,
    /// duroxide's worker lock timeout (default 30 s).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub worker_lock_timeout: Option<Duration>,
    /// Open loop: start this many orchestrations per second cluster-wide on a
    /// schedule, whatever the system's latency (`None`: closed loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open loop: how starts are spaced.
    #[serde(default, skip_serializing_if = "Arrival::is_constant")]
    pub arrival: Arrival,
    /// Open loop: cap on orchestrations in flight cluster-wide (default a
    /// minute of arrivals, at least 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    /// Stop starting after this many orchestrations cluster-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    /// Load that changes over time (see `loadgen_common::stages`): rates
    /// (`30s:10/s,1m:100/s`, open loop) or in-flight targets (`30s:5,1m:50`,
    /// closed loop), or a shape over the run (`ramp:50/s`, `spike:5/s..50/s`,
    /// `ebb-and-flow:5/s..50/s@1m`). `rate` or `max_concurrent` then hold
    /// the plan's peak, and explicit stages set the duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<String>,
    /// Faults to inject during the run (see [`crate::faults`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::faults::FaultSpec>,
}

/// Accept numbers, booleans and text as option values; keep them as text.
fn option_values<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Int(i64),
        Float(f64),
        Bool(bool),
        Text(String),
    }
    let raw = BTreeMap::<String, Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::Int(n) => n.to_string(),
                Value::Float(x) => x.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Text(t) => t,
            };
            (k, text)
        })
        .collect())
}

/// Spacing of open-loop starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
        self.resolved().as_str()
    }

    /// The spacing as the load both binaries share carries it.
    pub fn resolved(self) -> loadgen_common::load::Arrival {
        match self {
            Arrival::Constant => loadgen_common::load::Arrival::Constant,
            Arrival::Poisson => loadgen_common::load::Arrival::Poisson,
        }
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

pub use super::profiles::{all_profiles, builtin_profiles, find_profile, parse_profiles, select_profile};

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

impl Profile {
    /// The in-flight cap of an open loop peaking at `rate`: `max_in_flight`,
    /// or a minute of arrivals (at least 100).
    pub(super) fn cap_at(&self, rate: f64) -> u64 {
        self.max_in_flight.unwrap_or(((rate * 60.0).ceil() as u64).max(100))
    }

    /// The scenario this profile runs.
    pub fn scenario_name(&self) -> &str {
        if !self.mix.is_empty() { "mixed" } else { self.scenario.as_deref().unwrap_or(DEFAULT_SCENARIO) }
    }

    /// "N:M" dispatcher notation.
    pub fn dispatchers(&self) -> String {
        format!("{}:{}", self.orch_concurrency, self.worker_concurrency)
    }

    /// Check every field is usable (the scenario checks its own options).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |option, value: String, detail| Err(ConfigError::InvalidOption { option, value, detail });
        self.validate_stages()?;
        if self.max_concurrent == 0 {
            return bad("max_concurrent", "0".into(), "must be at least 1");
        }
        if self.max_concurrent > limits::MAX_IN_FLIGHT_PER_AGENT {
            return bad("max_concurrent", self.max_concurrent.to_string(), "must be at most 4294967295");
        }
        if self.duration.is_zero() {
            return bad("duration", "0s".into(), "must be positive");
        }
        if self.orch_concurrency == 0 || self.worker_concurrency == 0 {
            return bad(
                "dispatcher concurrency",
                format!("{}:{}", self.orch_concurrency, self.worker_concurrency),
                "both must be at least 1",
            );
        }
        if !(1..=limits::MAX_RUNTIMES_PER_AGENT).contains(&self.runtimes_per_agent) {
            return bad(
                "runtimes_per_agent",
                self.runtimes_per_agent.to_string(),
                "must be 1 to 64 (each agent's limit)",
            );
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
            && !(r.is_finite() && r > 0.0 && r <= limits::MAX_RATE)
        {
            return bad("rate", r.to_string(), "must be a positive number of starts per second (at most 1000000)");
        }
        if self.max_in_flight == Some(0) {
            return bad("max_in_flight", "0".into(), "must be at least 1");
        }
        if let Some(n) = self.max_in_flight.filter(|n| *n > limits::MAX_IN_FLIGHT_PER_AGENT) {
            return bad("max_in_flight", n.to_string(), "must be at most 4294967295");
        }
        if self.max_clock_offset.is_some_and(|d| d.is_zero()) {
            return bad("max_clock_offset", "0s".into(), "must be positive");
        }
        if self.iterations == Some(0) {
            return bad("iterations", "0".into(), "must be at least 1");
        }
        if self.db_latency > limits::MAX_DB_LATENCY {
            return bad("db_latency", format_duration(self.db_latency), "must be at most 10s");
        }
        if !self.mix.is_empty() && self.scenario.as_deref().is_some_and(|s| s != "mixed") {
            return bad("mix", format!("{:?}", self.mix), "a mix runs the mixed scenario: drop `scenario`");
        }
        for combo in &self.suite {
            parse_dispatchers(combo)?;
        }
        self.validate_locks()
    }

    /// Stages that parse, agree with `duration` and `rate`, and are not a suite.
    fn validate_stages(&self) -> Result<(), ConfigError> {
        let bad = |option, value: String, detail| Err(ConfigError::InvalidOption { option, value, detail });
        if let Some(text) = &self.stages {
            let open = stages_are_rates(text);
            let plan = StagePlan::parse(text, open, self.duration)
                .map_err(|e| ConfigError::Stages { value: text.clone(), detail: e.to_string() })?;
            if !StagePlan::is_shape(text) && plan.duration() != self.duration {
                return bad(
                    "stages",
                    text.clone(),
                    "explicit stages set the duration: drop `duration` or make it their total",
                );
            }
            if open && self.rate.is_some_and(|r| r != plan.peak()) {
                return bad("stages", text.clone(), "rate stages and `rate` exclude each other");
            }
            if !self.suite.is_empty() {
                return bad("stages", text.clone(), "a suite runs constant load: drop `stages` or `suite`");
            }
        }
        Ok(())
    }

    /// duroxide's lock timeouts within what it accepts.
    fn validate_locks(&self) -> Result<(), ConfigError> {
        let bad = |option, value: String, detail| Err(ConfigError::InvalidOption { option, value, detail });
        let (lo, hi) = limits::ORCHESTRATOR_LOCK;
        if let Some(t) = self.orchestrator_lock_timeout
            && !(lo..=hi).contains(&t)
        {
            return bad("orchestrator_lock_timeout", format_duration(t), "must be between 1s and 10m");
        }
        let (lo, hi) = limits::WORKER_LOCK;
        if let Some(t) = self.worker_lock_timeout
            && !(lo..=hi).contains(&t)
        {
            return bad("worker_lock_timeout", format_duration(t), "must be between 1s and 5m");
        }
        Ok(())
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

/// Stages written as rates (`/s`) are an open loop; plain numbers are
/// in-flight targets of a closed loop.
pub(super) fn stages_are_rates(text: &str) -> bool {
    text.contains("/s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_match_the_spec() {
        let all = parse_profiles(BUILTIN_PROFILES, "profiles.toml").expect("shipped profiles parse");
        let names: Vec<_> = all.iter().map(|p| p.name.as_str()).collect();
        for n in ["light", "standard", "production", "high-concurrency", "pool-stress", "soak", "high-latency", "suite"]
        {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
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
            assert_eq!(p.tasks_per_instance, Some(tasks), "{name}");
            assert_eq!(p.activity_delay, Some(Duration::from_millis(delay)), "{name}");
            assert_eq!(p.dispatchers(), disp, "{name}");
            assert_eq!(p.min_orch_per_sec, min, "{name}");
            assert_eq!(p.runtimes_per_agent, 1, "{name}");
            assert_eq!(p.scenario_name(), "fanout", "{name}");
        }
        assert_eq!(get("pool-stress").pool_max, Some(5));
        assert_eq!(get("high-latency").db_latency, Duration::from_millis(50));
        assert!(get("soak").rss_growth_mb_per_min.is_some());
        let suite: Vec<String> = get("suite").expand().expect("expand").iter().map(Profile::dispatchers).collect();
        assert_eq!(suite, ["1:1", "2:2", "4:4"]);
        assert_eq!(get("light").expand().expect("expand"), vec![get("light")]);
        // Load over time and faults: the ramp's stages settle to its peak and
        // length; chaos carries a fault every 20 s.
        let mut ramp = get("ramp");
        ramp.settle_stages().expect("ramp stages");
        assert_eq!((ramp.rate, ramp.duration), (Some(40.0), Duration::from_secs(50)));
        let chaos = get("chaos");
        let at: Vec<u64> = chaos.faults.iter().map(|f| f.at.as_secs()).collect();
        assert_eq!(at, [30, 50, 70, 90, 110, 130, 150, 170]);
        assert!(get("chaos-backends").faults.iter().all(|f| f.kind == "terminate-backends"));
        // Every built-in profile's faults are kinds the registry reads (the
        // failover profile's on --ha only).
        for p in builtin_profiles() {
            let ha = p.name == "failover";
            let reach = crate::faults::Reach { embedded_db: !ha, local_agents: Some(3), duration: p.duration, ha };
            crate::faults::Schedule::resolve(&p.faults, &reach).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        }
        let failover = get("failover");
        let kinds: Vec<&str> = failover.faults.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(kinds, ["switchover", "failover"]);
        let on_one_server = crate::faults::Reach {
            embedded_db: true,
            local_agents: Some(2),
            duration: get("failover").duration,
            ha: false,
        };
        let refused =
            crate::faults::Schedule::resolve(&get("failover").faults, &on_one_server).expect_err("needs --ha");
        assert!(refused.contains("needs --ha"), "{refused}");
    }

    #[test]
    fn profile_files_add_and_replace_profiles() {
        let file = "[[profile]]\nname='mine'\nmax_concurrent=3\nduration='2s'\norch_concurrency=1\nworker_concurrency=1\np99_ms=900.0\nscenario='timers'\noptions={ timers = 2, delay = '1s' }\n";
        // The only profile of the file is picked when no name is given.
        let p = select_profile(None, Some((file, "mine.toml"))).expect("mine");
        assert_eq!((p.name.as_str(), p.max_concurrent, p.p99_ms), ("mine", 3, Some(900.0)));
        assert!(!p.abort_on_fail, "off unless asked for");
        let aborting = file.replace("p99_ms=900.0", "p99_ms=900.0\nabort_on_fail=true");
        assert!(select_profile(None, Some((&aborting, "mine.toml"))).expect("mine").abort_on_fail);
        assert_eq!(p.scenario_name(), "timers");
        assert_eq!(p.options.get("timers").map(String::as_str), Some("2"));
        assert_eq!(select_profile(Some("standard"), Some((file, "f"))).expect("builtin").name, "standard");
        let replaced = file.replace("'mine'", "'light'");
        assert_eq!(select_profile(Some("light"), Some((&replaced, "f"))).expect("light").max_concurrent, 3);
        assert_eq!(all_profiles(Some((file, "f"))).expect("all").len(), builtin_profiles().len() + 1);
        assert_eq!(select_profile(None, None).expect("default").name, "light");
        let e = select_profile(Some("x"), Some((file, "f"))).expect_err("unknown");
        assert!(e.to_string().contains("mine"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_file_line_and_column() {
        let text = "[[profile]]\nname='x'\nmax_concurrent=1\nduration='1s'\norch_concurrency=1\nworker_concurrency=1\nmax_concurent=5\n";
        let e = parse_profiles(text, "mine.toml").expect_err("typo");
        let s = e.to_string();
        assert!(s.starts_with("mine.toml:7:1: unknown field `max_concurent`"), "{s}");
        let e = parse_profiles("[[profile]\n", "bad.toml").expect_err("syntax");
        assert!(e.to_string().starts_with("bad.toml:1:"), "{e}");
    }

    #[test]
    fn dispatcher_combinations_parse() {
        assert_eq!(parse_dispatchers("4:2"), Ok((4, 2)));
        for bad in ["4", "0:1", "1:0", "a:b", "1:2:3", ""] {
            assert!(parse_dispatchers(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_mix_runs_the_mixed_scenario() {
        let text = "[[profile]]\nname='m'\nmax_concurrent=4\nduration='2s'\norch_concurrency=1\nworker_concurrency=1\nmix={ fanout = 3, timers = 1 }\n";
        let p = parse_profiles(text, "m.toml").expect("mix");
        assert_eq!(p[0].scenario_name(), "mixed");
        let clash = text.replace("mix=", "scenario='fanout'\nmix=");
        assert!(parse_profiles(&clash, "m.toml").is_err());
    }
}
