//! The workload of a run: which scenario (or weighted mix), with which
//! options and seed. Options come from the profile (`[profile.options]`, a
//! `mix`, fanout's old `tasks_per_instance`/`activity_delay`), then from the
//! command line (`--scenario`, `--set key=value`, `--tasks`,
//! `--activity-delay`); the scenario itself checks them here, before
//! anything starts, by building it from the agents' own scenario library.
//! The coordinator never names a scenario.

use std::collections::BTreeMap;
use std::sync::Arc;

use loadgen_scenarios::{self as scenario, Built, Context, Facts, Options, Scenario, ScenarioError};

use super::profile::Profile;

/// A scenario and its options, checked.
#[derive(Clone, Debug)]
pub struct WorkloadPlan {
    pub scenario: String,
    /// As given (what travels to the agents, which check them again).
    pub given: Options,
    /// Every option with the value used (defaults filled in).
    pub resolved: Options,
    /// Fixed seed (`--seed`); otherwise each run draws its own from its id.
    pub seed: Option<u64>,
}

/// The options a profile gives its scenario, as the scenario reads them:
/// `[profile.options]`, a mix's weights, fanout's old names.
pub fn profile_options(profile: &Profile) -> Options {
    let mut given = profile.options.clone();
    if !profile.mix.is_empty() {
        let weights: Vec<String> = profile.mix.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        given.insert("weights".into(), weights.join(","));
    }
    if let Some(t) = profile.tasks_per_instance {
        given.insert("tasks".into(), t.to_string());
    }
    if let Some(d) = profile.activity_delay {
        given.insert("activity_delay".into(), loadgen_common::units::format_duration(d));
    }
    given
}

/// What the command line says about the workload.
#[derive(Clone, Debug, Default)]
pub struct WorkloadOverrides {
    pub scenario: Option<String>,
    /// `--set key=value`, in order.
    pub set: Vec<(String, String)>,
    /// fanout's aliases.
    pub tasks: Option<u32>,
    pub activity_delay: Option<std::time::Duration>,
    pub seed: Option<u64>,
}

impl WorkloadPlan {
    /// Resolve the workload of `profile` with the command line's overrides.
    pub fn resolve(profile: &Profile, o: &WorkloadOverrides) -> Result<Self, ScenarioError> {
        let from_profile = profile.scenario_name().to_string();
        let scenario = o.scenario.clone().unwrap_or_else(|| from_profile.clone());
        let mut given = Options::new();
        // The profile's options belong to the profile's scenario: another
        // scenario named on the command line starts from its own defaults.
        if scenario == from_profile {
            given = profile_options(profile);
        }
        if let Some(t) = o.tasks {
            given.insert("tasks".into(), t.to_string());
        }
        if let Some(d) = o.activity_delay {
            given.insert("activity_delay".into(), loadgen_common::units::format_duration(d));
        }
        for (k, v) in &o.set {
            given.insert(k.clone(), v.clone());
        }
        let built = scenario::build(&scenario, &given, &Self::context(0, 1, 0))?;
        Ok(WorkloadPlan { scenario, given, resolved: built.options, seed: o.seed })
    }

    fn context(seed: u64, agents: u32, agent: u32) -> Context {
        Context { run_id: String::new(), seed, agent, agents }
    }

    /// The seed of a run: the fixed one, or one drawn from the run id.
    pub fn seed_for(&self, run_id: &str) -> u64 {
        self.seed.unwrap_or_else(|| u64::from_str_radix(run_id.get(..8).unwrap_or("0"), 16).unwrap_or(0))
    }

    /// The scenario as the audit sees it: built for `run_id` with `agents`.
    pub fn build(&self, run_id: &str, seed: u64, agents: u32) -> Result<Built, ScenarioError> {
        let ctx = Context { run_id: run_id.to_string(), ..Self::context(seed, agents, 0) };
        scenario::build(&self.scenario, &self.given, &ctx)
    }

    /// One line the agents' understanding must equal (see `PrepareReply`).
    pub fn describe(&self, run_id: &str, seed: u64, agents: u32) -> Result<String, ScenarioError> {
        Ok(self.build(run_id, seed, agents)?.describe(seed))
    }
}

/// A built scenario with the facts the agents reported, for the audit.
#[derive(Clone, Debug)]
pub struct AuditWorkload {
    pub scenario: Arc<dyn Scenario>,
    pub facts: Facts,
}

/// The scenarios a workload's instances belong to, by orchestration name
/// (a mix lists its parts), with their history metrics.
pub fn orchestration_owners(s: &dyn Scenario) -> BTreeMap<&'static str, &'static scenario::Info> {
    let mut out = BTreeMap::new();
    let parts = s.parts();
    let infos: Vec<&'static scenario::Info> =
        if parts.is_empty() { scenario::find(s.name()).map(|e| vec![&e.info]).unwrap_or_default() } else { parts };
    for info in infos {
        for o in info.orchestrations {
            out.insert(*o, info);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::profile::find_profile;

    #[test]
    fn options_come_from_the_profile_then_the_command_line() {
        let light = find_profile("light").expect("light");
        let w = WorkloadPlan::resolve(&light, &WorkloadOverrides::default()).expect("light");
        assert_eq!(w.scenario, "fanout");
        assert_eq!(w.resolved.get("tasks").map(String::as_str), Some("3"));
        let o = WorkloadOverrides {
            set: vec![("tasks".into(), "7".into())],
            activity_delay: Some(std::time::Duration::from_millis(2)),
            ..Default::default()
        };
        let w = WorkloadPlan::resolve(&light, &o).expect("overridden");
        assert_eq!(w.resolved.get("tasks").map(String::as_str), Some("7"));
        assert_eq!(w.resolved.get("activity_delay").map(String::as_str), Some("2ms"));
        let typo = WorkloadOverrides { set: vec![("taks".into(), "1".into())], ..Default::default() };
        let e = WorkloadPlan::resolve(&light, &typo).expect_err("typo");
        assert_eq!(e.to_string(), "scenario fanout has no option \"taks\" (options: tasks, activity_delay)");
    }

    #[test]
    fn seeds_are_fixed_or_drawn_from_the_run_id() {
        let light = find_profile("light").expect("light");
        let w = WorkloadPlan::resolve(&light, &WorkloadOverrides::default()).expect("light");
        assert_eq!(w.seed_for("000000ff"), 255);
        let fixed = WorkloadPlan { seed: Some(7), ..w };
        assert_eq!(fixed.seed_for("000000ff"), 7);
        assert_eq!(fixed.describe("r", 7, 2).expect("describe"), "fanout activity_delay=5ms tasks=3 seed=7");
    }
}
