//! The plans of the multi-run commands besides the sweep: `compare`
//! (providers) and `ab` (builds), each a run plan per side with local
//! agents; `hunt` (one run repeated); and `bench` (duroxide's stress module
//! beside this tool).

use crate::plan::{AgentSource, CompletionSource, Database, Outputs, PlanError};

use super::Args;
use super::resolve::{in_agent_is_local, plan_for, profile, profile_or, refuse_faults};

/// A provider comparison's plan: one run plan per provider, local agents.
pub fn compare_plan(c: &super::CompareArgs, args: &Args) -> Result<crate::compare::ComparePlan, PlanError> {
    use crate::plan::ProviderKind;
    if args.build.is_some() {
        return Err(PlanError::Invalid("compare runs this tool's own build of each provider: drop --build".into()));
    }
    let mut providers = c.providers.clone();
    providers.dedup();
    if providers.len() < 2 || providers.iter().enumerate().any(|(i, p)| providers[..i].contains(p)) {
        return Err(PlanError::Invalid("--providers needs two or more different providers".into()));
    }
    if c.repeat == 0 {
        return Err(PlanError::Invalid("--repeat must be at least 1".into()));
    }
    if !args.agents.is_empty() {
        return Err(PlanError::Invalid("compare runs local agents (SQLite lives in its agent): drop --agents".into()));
    }
    if args.track || args.track_cloud {
        return Err(PlanError::Invalid("compare's runs are not tracked: drop --track".into()));
    }
    let count = args.local.unwrap_or(1);
    if count != 1 && providers.iter().any(|p| p.in_agent()) {
        return Err(in_agent_is_local(ProviderKind::SqliteMemory));
    }
    let agents = agents_for_compare(args, count)?;
    let profile = profile(args)?;
    refuse_faults(args, &profile, "compare measures providers")?;
    let base = plan_for(args, profile, agents)?;
    let plans = providers
        .into_iter()
        .map(|p| {
            let mut plan = base.clone();
            plan.provider = p;
            if p.in_agent() {
                plan.database = Database::InAgent;
                plan.completion_source = CompletionSource::Agent;
            }
            plan
        })
        .collect();
    Ok(crate::compare::ComparePlan { plans, repeat: c.repeat })
}

/// Local agents for a comparison (`--local`, default 1).
fn agents_for_compare(args: &Args, count: u32) -> Result<AgentSource, PlanError> {
    if count == 0 {
        return Err(PlanError::Invalid("--local needs at least 1 agent".into()));
    }
    let bin = crate::agents::local::find_agent_binary(args.agent_bin.as_deref())?;
    let token = args.token.clone().unwrap_or_else(loadgen_common::auth::new_token);
    Ok(AgentSource::Local { count, bin, token, env: Vec::new() })
}

/// An A/B comparison's plan: the run every repetition shares, with local
/// agents (`--local N`, default 1) from each build's binary.
pub fn ab_plan(a: &super::AbArgs, args: &Args) -> Result<crate::ab::AbPlan, PlanError> {
    if args.build.is_some() {
        return Err(PlanError::Invalid(
            "ab names its builds with --baseline-build and --candidate-build: drop --build".into(),
        ));
    }
    if !args.agents.is_empty() {
        return Err(PlanError::Invalid(
            "ab runs local agents from the two binaries: drop --agents (use --local N for more than one)".into(),
        ));
    }
    if args.suite.is_some() || args.track || args.track_cloud {
        return Err(PlanError::Invalid("ab compares single runs: drop --suite and --track".into()));
    }
    if a.repeat < 2 {
        return Err(PlanError::Invalid(format!(
            "--repeat {} gives no interval: ab needs at least 2 runs per build (3 or more for a verdict)",
            a.repeat
        )));
    }
    if !(0.0..=50.0).contains(&a.min_effect_pct) {
        return Err(PlanError::Invalid(format!("--min-effect-pct {} must be between 0 and 50", a.min_effect_pct)));
    }
    let binary = |p: &Option<std::path::PathBuf>, which: &str| -> Result<std::path::PathBuf, PlanError> {
        let Some(p) = p else {
            return Err(PlanError::Invalid(format!("ab needs --{which}-agent PATH or --{which}-build VERSION|DIR")));
        };
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() => Ok(p.to_path_buf()),
            _ => Err(PlanError::Invalid(format!("--{which}-agent {}: no such agent binary", p.display()))),
        }
    };
    let baseline = crate::ab::Variant { bin: binary(&a.baseline_agent, "baseline")?, env: a.baseline_env.clone() };
    let candidate = crate::ab::Variant { bin: binary(&a.candidate_agent, "candidate")?, env: a.candidate_env.clone() };
    let count = match args.local {
        Some(0) => return Err(PlanError::Invalid("--local needs at least 1 agent".into())),
        Some(n) => n,
        None => 1,
    };
    let token = args.token.clone().unwrap_or_else(loadgen_common::auth::new_token);
    let agents = AgentSource::Local { count, bin: baseline.bin.clone(), token, env: baseline.env.clone() };
    // Ten seconds of the standard workload: long enough that a run's
    // throughput is steady, short enough for repetitions.
    let profile = profile_or(args, Some("standard"))?;
    refuse_faults(args, &profile, "ab compares builds")?;
    let run = plan_for(args, profile, agents)?;
    Ok(crate::ab::AbPlan { run, baseline, candidate, repeat: a.repeat, min_effect: a.min_effect_pct / 100.0 })
}

/// A hunt's plan: the run it repeats (one run: a suite is refused), its
/// budget, and the command that replays a try.
pub fn hunt_plan(h: &super::HuntArgs, args: &Args, argv: &[String]) -> Result<crate::hunt::HuntPlan, PlanError> {
    if args.suite.is_some() || args.track || args.track_cloud {
        return Err(PlanError::Invalid("hunt repeats one run: drop --suite and --track".into()));
    }
    if h.budget.is_zero() {
        return Err(PlanError::Invalid("--budget must be positive".into()));
    }
    if h.tries == Some(0) {
        return Err(PlanError::Invalid("--tries must be at least 1".into()));
    }
    let run = super::resolve::run_plan(args)?;
    if run.runs.len() > 1 {
        return Err(PlanError::Invalid("hunt repeats one run: the profile is a suite; pick one combination".into()));
    }
    Ok(crate::hunt::HuntPlan {
        run,
        budget: h.budget,
        tries: h.tries,
        whole_budget: h.whole_budget,
        replay: crate::hunt::replay_command(argv),
    })
}

/// The bench's plan.
pub fn bench_plan(b: &super::BenchArgs) -> Result<crate::bench::BenchPlan, PlanError> {
    for c in &b.combos {
        crate::plan::profile::parse_dispatchers(c)?;
    }
    if b.repeat == 0 {
        return Err(PlanError::Invalid("--repeat must be at least 1".into()));
    }
    if let Some(r) = b.min_throughput_ratio
        && !(r.is_finite() && r > 0.0)
    {
        return Err(PlanError::Invalid(format!("--min-throughput-ratio {r} must be a positive number")));
    }
    if !b.provider.spec().benched {
        return Err(PlanError::Invalid(format!(
            "bench runs on {} (a file store measures the disk, not the generator)",
            crate::plan::ProviderKind::benched_names()
        )));
    }
    if b.provider.in_agent() && b.database_url.is_some() {
        return Err(PlanError::Invalid(format!(
            "--provider {} keeps its store in the agent's memory: drop --database-url (or unset DATABASE_URL)",
            b.provider.as_str()
        )));
    }
    let in_memory = b.provider.spec().store == crate::plan::provider::StoreSite::AgentMemory;
    if in_memory && !b.ceiling_step.is_zero() && b.ceiling_step < std::time::Duration::from_secs(3) {
        return Err(PlanError::Invalid(
            "--ceiling-step must be at least 3s (a step's pace is read over its last two thirds), or 0 to skip the search"
                .into(),
        ));
    }
    if b.duration.is_zero() || b.max_concurrent == 0 || b.tasks == 0 {
        return Err(PlanError::Invalid("--duration, --max-concurrent and --tasks must be positive".into()));
    }
    if let Some(path) = &b.json {
        let outputs = Outputs {
            targets: vec![crate::plan::outputs::Target { format: "json".into(), path: path.clone(), flag: "--json" }],
            ..Default::default()
        };
        outputs.check()?;
    }
    Ok(crate::bench::BenchPlan {
        combos: b.combos.clone(),
        repeat: b.repeat,
        duration: b.duration,
        max_concurrent: b.max_concurrent,
        tasks: b.tasks,
        activity_delay: b.activity_delay,
        database_url: b.database_url.clone(),
        completion_poll: b.completion_poll,
        agent_bin: crate::agents::local::find_agent_binary(b.agent_bin.as_deref())?,
        stress_bin: std::env::current_exe()
            .map_err(|e| PlanError::Invalid(format!("cannot find this executable: {e}")))?,
        provider: b.provider,
        min_throughput_ratio: b.min_throughput_ratio,
        ceiling_step: (in_memory && !b.ceiling_step.is_zero()).then_some(b.ceiling_step),
    })
}
