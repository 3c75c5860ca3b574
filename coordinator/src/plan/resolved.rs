//! A profile resolved: what a run does, typed and computed once. The TOML
//! schema ([`Profile`]) is what users write, flags override and sweeps vary;
//! a run resolves it into a [`ProfilePlan`] at its start, and the run's code,
//! its gates, the result model and every renderer read the plan: its load
//! (open or closed loop, constant or staged) is a [`Load`], never stage text
//! parsed again.
//!
//! Results carry the profile as it was given, so a run can be repeated from
//! its result: a plan serializes as its [`Profile`] and is resolved again
//! when a result is read (a result whose profile no longer resolves is an
//! error that names it, not a silent default).

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen_common::load::Load;
use loadgen_common::units::format_rate;
use serde::{Deserialize, Serialize};

use super::profile::{ConfigError, Profile};

/// The dispatcher slots of every runtime: orchestrations and activities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dispatchers {
    pub orch: u32,
    pub worker: u32,
}

impl std::fmt::Display for Dispatchers {
    /// "N:M", as `--suite` writes a combination.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.orch, self.worker)
    }
}

/// The limits a run is judged against (see `gates.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct GateLimits {
    pub min_orch_per_sec: f64,
    pub p99_ms: Option<f64>,
    pub max_failed: Option<u64>,
    pub max_clock_offset: Option<Duration>,
    pub rss_growth_mb_per_min: Option<f64>,
    pub abort_on_fail: bool,
}

/// A profile resolved for one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "Profile", try_from = "Profile")]
pub struct ProfilePlan {
    /// The profile as given: how results carry it.
    given: Profile,
    pub name: String,
    pub description: String,
    /// The run's load, cluster-wide.
    pub load: Load,
    /// The load in one phrase ("10 in flight", "open loop 40/s constant ...").
    pub load_phrase: String,
    pub duration: Duration,
    pub dispatchers: Dispatchers,
    pub runtimes_per_agent: u32,
    pub poll_interval: Duration,
    pub drain_timeout: Duration,
    /// Connection-pool size of every provider (`None`: the agents' own).
    pub pool_max: Option<u32>,
    /// One-way delay between the runtimes and Postgres (0: none).
    pub db_latency: Duration,
    pub orchestrator_lock_timeout: Option<Duration>,
    pub worker_lock_timeout: Option<Duration>,
    /// Stop starting after this many orchestrations cluster-wide.
    pub iterations: Option<u64>,
    /// The suite's combinations (a suite's run keeps its own one).
    pub suite: Vec<String>,
    pub gates: GateLimits,
    /// The scenario the profile names, and the options it gives it as the
    /// scenario reads them (a mix's weights and fanout's old names folded
    /// in). The command line may replace both: the run's own is its
    /// workload report.
    pub scenario: String,
    pub options: BTreeMap<String, String>,
    /// The open loop's cap is the default (a minute of arrivals, at least 100).
    pub default_cap: bool,
    /// How many faults the profile schedules.
    pub faults: usize,
}

impl ProfilePlan {
    /// Resolve `profile` (already validated and with its stages settled).
    pub fn resolve(profile: Profile) -> Result<Self, ConfigError> {
        let load = profile.load()?;
        Ok(Self::with_load(profile, load))
    }

    fn with_load(p: Profile, load: Load) -> Self {
        ProfilePlan {
            name: p.name.clone(),
            description: p.description.clone(),
            load_phrase: phrase(&p, &load),
            load,
            duration: p.duration,
            dispatchers: Dispatchers { orch: p.orch_concurrency, worker: p.worker_concurrency },
            runtimes_per_agent: p.runtimes_per_agent,
            poll_interval: p.poll_interval,
            drain_timeout: p.drain_timeout,
            pool_max: p.pool_max,
            db_latency: p.db_latency,
            orchestrator_lock_timeout: p.orchestrator_lock_timeout,
            worker_lock_timeout: p.worker_lock_timeout,
            iterations: p.iterations,
            suite: p.suite.clone(),
            scenario: p.scenario_name().to_string(),
            options: super::workload::profile_options(&p),
            default_cap: p.max_in_flight.is_none(),
            faults: p.faults.len(),
            gates: GateLimits {
                min_orch_per_sec: p.min_orch_per_sec,
                p99_ms: p.p99_ms,
                max_failed: p.max_failed,
                max_clock_offset: p.max_clock_offset,
                rss_growth_mb_per_min: p.rss_growth_mb_per_min,
                abort_on_fail: p.abort_on_fail,
            },
            given: p,
        }
    }

    /// The run starts on a schedule (open loop).
    pub fn open_loop(&self) -> bool {
        self.load.is_open()
    }

    /// The in-flight cap of an open loop (`None`: a closed loop).
    pub fn open_loop_cap(&self) -> Option<u64> {
        self.open_loop().then_some(self.load.max_in_flight)
    }

    /// The in-flight budget of a closed loop, or an open loop's cap.
    pub fn in_flight(&self) -> u64 {
        self.load.max_in_flight
    }

    /// The run belongs to a suite (one run per dispatcher combination).
    pub fn in_suite(&self) -> bool {
        !self.suite.is_empty()
    }
}

/// Profiles as they would run (stages settled), for listing them.
pub fn resolve_all(profiles: Vec<Profile>) -> Result<Vec<ProfilePlan>, ConfigError> {
    profiles
        .into_iter()
        .map(|mut p| {
            p.settle_stages()?;
            ProfilePlan::resolve(p)
        })
        .collect()
}

/// The load in one phrase, from the load as resolved.
fn phrase(p: &Profile, load: &Load) -> String {
    let cap = load.max_in_flight;
    match (p.stages.as_deref(), load.arrival()) {
        (Some(stages), Some(arrival)) => format!(
            "open loop in stages {stages} (peak {}, {} arrivals, at most {cap} in flight)",
            format_rate(load.peak()),
            arrival.as_str()
        ),
        (Some(stages), None) => format!("closed loop in stages {stages} (peak {cap} in flight)"),
        (None, Some(arrival)) => {
            format!("open loop {} {} (at most {cap} in flight)", format_rate(load.peak()), arrival.as_str())
        }
        (None, None) => format!("{cap} in flight"),
    }
}

impl Default for ProfilePlan {
    /// The default profile's plan: a constant closed loop of 0 in flight.
    fn default() -> Self {
        let p = Profile::default();
        let load = Load::closed(p.max_concurrent, p.duration);
        Self::with_load(p, load)
    }
}

impl TryFrom<Profile> for ProfilePlan {
    type Error = ConfigError;

    fn try_from(p: Profile) -> Result<Self, ConfigError> {
        Self::resolve(p)
    }
}

impl From<ProfilePlan> for Profile {
    /// The profile as given, with the plan's own fields written back (a
    /// test or a report may set them; the load is the given profile's).
    fn from(plan: ProfilePlan) -> Profile {
        let g = plan.gates;
        Profile {
            name: plan.name,
            description: plan.description,
            duration: plan.duration,
            orch_concurrency: plan.dispatchers.orch,
            worker_concurrency: plan.dispatchers.worker,
            runtimes_per_agent: plan.runtimes_per_agent,
            poll_interval: plan.poll_interval,
            drain_timeout: plan.drain_timeout,
            pool_max: plan.pool_max,
            db_latency: plan.db_latency,
            orchestrator_lock_timeout: plan.orchestrator_lock_timeout,
            worker_lock_timeout: plan.worker_lock_timeout,
            iterations: plan.iterations,
            suite: plan.suite,
            min_orch_per_sec: g.min_orch_per_sec,
            p99_ms: g.p99_ms,
            max_failed: g.max_failed,
            max_clock_offset: g.max_clock_offset,
            rss_growth_mb_per_min: g.rss_growth_mb_per_min,
            abort_on_fail: g.abort_on_fail,
            ..plan.given
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::profile::{builtin_profiles, find_profile};

    #[test]
    fn every_builtin_profile_resolves_and_serializes_as_it_was_given() {
        for mut p in builtin_profiles() {
            p.settle_stages().expect("stages");
            let plan = ProfilePlan::resolve(p.clone()).expect("resolves");
            let json = serde_json::to_value(&plan).expect("json");
            assert_eq!(json, serde_json::to_value(&p).expect("json"), "{}", p.name);
            let back: ProfilePlan = serde_json::from_value(json).expect("read back");
            assert_eq!(back, plan, "{}", p.name);
        }
    }

    #[test]
    fn the_load_is_resolved_once_and_described_from_it() {
        let mut p = find_profile("light").expect("light");
        p.rate = Some(40.0);
        p.max_in_flight = Some(100);
        let plan = ProfilePlan::resolve(p.clone()).expect("open");
        assert!(plan.open_loop());
        assert_eq!(plan.open_loop_cap(), Some(100));
        assert_eq!(plan.load_phrase, "open loop 40/s constant (at most 100 in flight)");
        p.rate = None;
        p.stages = Some("5s:3,5s:12".into());
        p.settle_stages().expect("stages");
        let staged = ProfilePlan::resolve(p.clone()).expect("staged");
        assert!(!staged.open_loop() && staged.load.staged);
        assert_eq!(staged.open_loop_cap(), None);
        assert_eq!(staged.load_phrase, "closed loop in stages 5s:3,5s:12 (peak 12 in flight)");
        assert_eq!(staged.dispatchers.to_string(), p.dispatchers());
    }

    #[test]
    fn a_result_whose_stages_no_longer_parse_is_refused_when_read() {
        let mut json = serde_json::to_value(find_profile("light").expect("light")).expect("json");
        json["stages"] = "nonsense".into();
        let err = serde_json::from_value::<ProfilePlan>(json).expect_err("refused");
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn fields_set_on_the_plan_are_what_it_serializes() {
        let mut plan = ProfilePlan::resolve(find_profile("light").expect("light")).expect("plan");
        plan.name = "renamed".into();
        plan.dispatchers = Dispatchers { orch: 1, worker: 3 };
        let p = Profile::from(plan);
        assert_eq!((p.name.as_str(), p.orch_concurrency, p.worker_concurrency), ("renamed", 1, 3));
    }
}
