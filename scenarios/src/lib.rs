//! The scenario library: every workload the generator can drive, one small
//! file each, listed once in [`REGISTRY`].
//!
//! A scenario declares its name, what it stresses and its options
//! ([`Info`]); registers its orchestrations and activities ([`Entry::register`],
//! the same on every runtime of every agent whatever the options, because a
//! runtime that meets an unregistered orchestration abandons it until it is
//! poison: options travel in each instance's input instead); says how to
//! start each instance and what to do to it while it runs ([`Scenario::start`]);
//! and what each instance must end as ([`Scenario::expect`]), which the
//! coordinator's audit holds every instance to.
//!
//! To add a scenario: write `scenario/<name>.rs` with an `ENTRY`, declare the
//! module and add one line to [`REGISTRY`]. Nothing else names it: the
//! coordinator's catalogue, `--scenario`, the mixed workload and the
//! end-to-end test (`coordinator/tests/scenarios.rs`) all read the registry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use duroxide::runtime::registry::{ActivityRegistry, ActivityRegistryBuilder, OrchestrationRegistryBuilder};
use duroxide::{ActivityContext, OrchestrationContext, OrchestrationRegistry};
use thiserror::Error;

pub mod expect;
pub mod instance;
pub mod ledger;
pub mod options;

mod cancellation;
mod continue_as_new;
mod events;
mod failures;
mod fanout;
mod hot_instances;
mod large_payloads;
mod mixed;
mod retries;
mod state;
mod sub_orchestrations;
mod timers;

pub use expect::{Count, Expect, HistoryMetric, MetricStart, Observed, Outcome, Output};
pub use instance::{Action, At, Background, Hook, Message, Setup, Start};
pub use options::{OptionSpec, Options, Reader};

/// Every scenario, one line each, in the order `coordinator scenarios` lists them.
pub const REGISTRY: &[&Entry] = &[
    &fanout::ENTRY,
    &timers::ENTRY,
    &events::ENTRY,
    &sub_orchestrations::ENTRY,
    &continue_as_new::ENTRY,
    &retries::ENTRY,
    &failures::ENTRY,
    &cancellation::ENTRY,
    &large_payloads::ENTRY,
    &hot_instances::ENTRY,
    &state::ENTRY,
    &mixed::ENTRY,
];

/// What a scenario says about itself.
#[derive(Debug)]
pub struct Info {
    pub name: &'static str,
    /// What it stresses, one line.
    pub stresses: &'static str,
    pub options: &'static [OptionSpec],
    /// The orchestrations it registers (the audit tells scenarios apart by them).
    pub orchestrations: &'static [&'static str],
    /// Latencies the audit reads back from the history after the run.
    pub history_metrics: &'static [HistoryMetric],
}

/// A scenario's line in the registry.
pub struct Entry {
    pub info: Info,
    /// Register the orchestrations and activities (independent of options).
    pub register: fn(&mut Registrar),
    /// Build the scenario from its options.
    pub build: BuildFn,
}

/// Builds a scenario from its options (read through the [`Reader`]).
pub type BuildFn = fn(&Reader<'_>, &Context) -> Result<Arc<dyn Scenario>, ScenarioError>;

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("name", &self.info.name).finish_non_exhaustive()
    }
}

/// What a scenario is built for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub run_id: String,
    /// Seed of every per-instance choice.
    pub seed: u64,
    /// This agent (the coordinator builds with agent 0 to audit).
    pub agent: u32,
    /// Agents taking part.
    pub agents: u32,
}

/// Scenario facts every agent reported, agent index -> fact -> count
/// (hot instances are held to the events each agent sent them).
pub type Facts = BTreeMap<u32, BTreeMap<String, u64>>;

/// A workload the driver can run.
pub trait Scenario: Send + Sync + std::fmt::Debug {
    /// The registry entry's name.
    fn name(&self) -> &'static str;
    /// How to start instance `at`.
    fn start(&self, at: At) -> Start;
    /// The scenario instance `at` is tallied under, without building its start.
    fn scenario_of(&self, _at: At) -> &'static str {
        self.name()
    }
    /// What instance `at` must end as.
    fn expect(&self, at: At, facts: &Facts) -> Expect;
    /// False for a scenario whose load is its [`Background`] alone.
    fn has_instances(&self) -> bool {
        true
    }
    /// This agent's background work (hot instances), if any.
    fn background(&self) -> Option<Box<dyn Background>> {
        None
    }
    /// Instances outside the `{run}-{agent}-{seq}` scheme, with what each
    /// must end as (the audit looks for them too).
    fn extra_instances(&self, _facts: &Facts) -> Vec<(String, Expect)> {
        Vec::new()
    }
    /// Scenarios this one draws its instances from (a mix: its parts).
    fn parts(&self) -> Vec<&'static Info> {
        Vec::new()
    }
}

/// A scenario request that cannot be honoured.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("unknown scenario {name:?} (known: {known})")]
    Unknown { name: String, known: String },
    #[error("scenario {scenario}: invalid {key} {value:?}: {detail} (options: {known})")]
    InvalidOption { scenario: String, key: String, value: String, detail: String, known: String },
    #[error("scenario {scenario} has no option {key:?} (options: {known})")]
    UnknownOption { scenario: String, key: String, known: String },
}

/// The registry entry called `name`.
pub fn find(name: &str) -> Result<&'static Entry, ScenarioError> {
    REGISTRY.iter().copied().find(|e| e.info.name == name).ok_or_else(|| ScenarioError::Unknown {
        name: name.to_string(),
        known: REGISTRY.iter().map(|e| e.info.name).collect::<Vec<_>>().join(", "),
    })
}

/// A scenario built from its options, with the options it resolved.
#[derive(Clone, Debug)]
pub struct Built {
    pub scenario: Arc<dyn Scenario>,
    /// Every option with the value used (defaults filled in).
    pub options: Options,
}

impl Built {
    /// One line that two builds agree on exactly when they run the same
    /// instances: "name key=value ... seed=N".
    pub fn describe(&self, seed: u64) -> String {
        let mut text = self.scenario.name().to_string();
        for (k, v) in &self.options {
            text.push_str(&format!(" {k}={v}"));
        }
        text.push_str(&format!(" seed={seed}"));
        text
    }
}

/// Build scenario `name` with `given` options (unknown keys and bad values refused).
pub fn build(name: &str, given: &Options, ctx: &Context) -> Result<Built, ScenarioError> {
    let entry = find(name)?;
    let reader = Reader::new(entry.info.name, entry.info.options, given);
    let scenario = (entry.build)(&reader, ctx)?;
    reader.finish()?;
    Ok(Built { scenario, options: reader.resolved() })
}

/// Activity executions, counted per scenario where they run.
#[derive(Debug, Default)]
pub struct ActivityCounters {
    counters: BTreeMap<&'static str, AtomicU64>,
    /// Every execution, until the agent's next report takes it.
    pub ledger: ledger::Buffer,
}

impl ActivityCounters {
    /// One counter per registered scenario.
    pub fn new() -> Self {
        ActivityCounters {
            counters: REGISTRY.iter().map(|e| (e.info.name, AtomicU64::new(0))).collect(),
            ledger: ledger::Buffer::default(),
        }
    }

    fn bump(&self, scenario: &str) {
        if let Some(c) = self.counters.get(scenario) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count `n` executions of `scenario` that ran elsewhere (the runtimes
    /// of a successor process this agent handed its work to).
    pub fn add(&self, scenario: &str, n: u64) {
        if let Some(c) = self.counters.get(scenario) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Executions so far, per scenario.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.counters.iter().map(|(k, v)| (*k, v.load(Ordering::Relaxed))).collect()
    }

    /// Executions so far over every scenario.
    pub fn total(&self) -> u64 {
        self.counters.values().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// Collects every scenario's orchestrations and activities for one runtime;
/// activities are wrapped to count their executions per scenario.
pub struct Registrar {
    activities: Option<ActivityRegistryBuilder>,
    orchestrations: Option<OrchestrationRegistryBuilder>,
    counters: Arc<ActivityCounters>,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar").finish_non_exhaustive()
    }
}

/// Test-only: every activity sleeps this many milliseconds more
/// (`LOADGEN_TEST_SLOW_ACTIVITY_MS`), making a build slower by a known amount
/// for the A/B command's own test. Read once per process; 0 when unset.
pub const SLOW_ACTIVITY_ENV: &str = "LOADGEN_TEST_SLOW_ACTIVITY_MS";

fn test_slowdown() -> Duration {
    static EXTRA: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *EXTRA.get_or_init(|| {
        let ms = std::env::var(SLOW_ACTIVITY_ENV).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
        if ms > 0 {
            tracing::warn!(ms, "test knob {SLOW_ACTIVITY_ENV}: every activity is slowed down");
        }
        Duration::from_millis(ms)
    })
}

impl Registrar {
    /// Register an activity of `scenario`.
    pub fn activity<F, Fut>(&mut self, scenario: &'static str, name: &'static str, f: F)
    where
        F: Fn(ActivityContext, String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
    {
        let counters = Arc::clone(&self.counters);
        let f = Arc::new(f);
        let extra = test_slowdown();
        let wrapped = move |ctx: ActivityContext, input: String| {
            let (counters, f) = (Arc::clone(&counters), Arc::clone(&f));
            async move {
                if !extra.is_zero() {
                    tokio::time::sleep(extra).await;
                }
                let (instance, execution) = (ctx.instance_id().to_string(), ctx.execution_id());
                let input_md5 = expect::md5_hex(&input);
                let result = f(ctx, input).await;
                counters.bump(scenario);
                counters.ledger.record(loadgen_common::ledger::ActivityRun {
                    instance,
                    execution,
                    activity: name.to_string(),
                    input_md5,
                    ok: result.is_ok(),
                });
                result
            }
        };
        self.activities = self.activities.take().map(|b| b.register(name, wrapped));
    }

    /// Register an orchestration.
    pub fn orchestration<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: Fn(OrchestrationContext, String) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
    {
        self.orchestrations = self.orchestrations.take().map(|b| b.register(name, f));
    }
}

/// The registries of one runtime: every scenario of [`REGISTRY`].
pub fn registries(counters: Arc<ActivityCounters>) -> (ActivityRegistry, OrchestrationRegistry) {
    let mut r = Registrar {
        activities: Some(ActivityRegistry::builder()),
        orchestrations: Some(OrchestrationRegistry::builder()),
        counters,
    };
    for e in REGISTRY {
        (e.register)(&mut r);
    }
    let activities =
        r.activities.take().map(ActivityRegistryBuilder::build).unwrap_or_else(|| ActivityRegistry::builder().build());
    let orchestrations = r
        .orchestrations
        .take()
        .map(OrchestrationRegistryBuilder::build)
        .unwrap_or_else(|| OrchestrationRegistry::builder().build());
    (activities, orchestrations)
}

/// Parse an orchestration's input (JSON) into its options type.
pub fn input<T: serde::de::DeserializeOwned>(scenario: &str, text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("{scenario} input {text:?}: {e}"))
}

/// An orchestration's input as JSON.
pub fn to_input<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain structs of numbers and strings cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The raise time the driver put in front of an event's data, and the rest.
pub fn split_raised(data: &str) -> (Option<u64>, &str) {
    match data.split_once('|') {
        Some((ms, rest)) => (ms.parse().ok(), rest),
        None => (None, data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context { run_id: "r1".into(), seed: 42, agent: 0, agents: 2 }
    }

    #[test]
    fn the_registry_is_complete_and_consistent() {
        let mut names = std::collections::BTreeSet::new();
        let mut orchestrations = std::collections::BTreeSet::new();
        for e in REGISTRY {
            assert!(names.insert(e.info.name), "{} listed twice", e.info.name);
            assert!(!e.info.stresses.is_empty(), "{} says what it stresses", e.info.name);
            for o in e.info.orchestrations {
                assert!(orchestrations.insert(*o), "orchestration {o} registered by two scenarios");
            }
            // Every scenario builds with its defaults, and its defaults are its options.
            let built = build(e.info.name, &Options::new(), &ctx()).unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(built.scenario.name(), e.info.name);
            let keys: Vec<&str> = built.options.keys().map(String::as_str).collect();
            let mut declared: Vec<&str> = e.info.options.iter().map(|o| o.key).collect();
            declared.sort_unstable();
            assert_eq!(keys, declared, "{} reads exactly the options it declares", e.info.name);
        }
        assert!(REGISTRY.len() >= 11);
        let counters = Arc::new(ActivityCounters::new());
        let (activities, orchestrations_reg) = registries(counters);
        for o in &orchestrations {
            assert!(orchestrations_reg.has(o), "{o} registered");
        }
        assert!(activities.count() >= 7, "{} activities", activities.count());
    }

    #[test]
    fn unknown_scenarios_and_options_are_named() {
        let e = build("nope", &Options::new(), &ctx()).expect_err("unknown");
        assert!(e.to_string().starts_with("unknown scenario \"nope\" (known: fanout, timers, "), "{e}");
        let typo = Options::from([("taks".to_string(), "3".to_string())]);
        let e = build("fanout", &typo, &ctx()).expect_err("typo");
        assert_eq!(e.to_string(), "scenario fanout has no option \"taks\" (options: tasks, activity_delay)");
    }

    #[test]
    fn starts_and_expectations_agree_on_every_scenario() {
        // Each instance's expectation is computed from its id alone: the
        // agent that starts it and the coordinator that audits it agree.
        for e in REGISTRY {
            let built = build(e.info.name, &Options::new(), &ctx()).expect("defaults");
            if !built.scenario.has_instances() {
                continue;
            }
            for seq in 0..50 {
                let at = At { agent: 1, seq };
                let start = built.scenario.start(at);
                let expect = built.scenario.expect(at, &Facts::new());
                assert_eq!(start.scenario, expect.scenario, "{}", e.info.name);
                assert_eq!(start, built.scenario.start(at), "{} starts deterministically", e.info.name);
            }
        }
    }

    #[test]
    fn raise_times_split_off_event_data() {
        assert_eq!(split_raised("1700000000123|ev-3"), (Some(1_700_000_000_123), "ev-3"));
        assert_eq!(split_raised("plain"), (None, "plain"));
    }
}
