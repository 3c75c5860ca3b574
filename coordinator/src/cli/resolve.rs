//! The command line and the profile, resolved into plans once, with every
//! check that needs no database or agent made before anything starts.

use crate::plan::outputs::Target;
use crate::plan::profile::{Profile, select_profile};
use crate::plan::workload::{WorkloadOverrides, WorkloadPlan};
use crate::plan::{Access, AgentSource, CompletionSource, Database, Outputs, PlanError, RunPlan, Tracking, slices};

use super::Args;

/// Read --profile-file and pick the profile (no overrides yet); without
/// --profile and --profile-file, `fallback` (or the default profile).
fn selected(args: &Args, fallback: Option<&str>) -> Result<Profile, PlanError> {
    let file = match &args.profile_file {
        Some(path) => Some((
            std::fs::read_to_string(path)
                .map_err(|e| PlanError::Invalid(format!("cannot read profile file {}: {e}", path.display())))?,
            path.display().to_string(),
        )),
        None => None,
    };
    let name = args.profile.as_deref().or(if file.is_none() { fallback } else { None });
    Ok(select_profile(name, file.as_ref().map(|(t, n)| (t.as_str(), n.as_str())))?)
}

/// Apply the command line's overrides to `p`.
fn apply_overrides(args: &Args, mut p: Profile) -> Profile {
    macro_rules! set {
        ($($f:ident),* $(,)?) => { $( if let Some(v) = args.$f.clone() { p.$f = v; } )* };
    }
    set!(
        max_concurrent,
        duration,
        orch_concurrency,
        worker_concurrency,
        runtimes_per_agent,
        poll_interval,
        drain_timeout,
        min_orch_per_sec,
        db_latency,
        suite,
        arrival,
    );
    macro_rules! set_opt {
        ($($f:ident),* $(,)?) => { $( if args.$f.is_some() { p.$f = args.$f.clone(); } )* };
    }
    set_opt!(
        pool_max,
        p99_ms,
        max_failed,
        max_clock_offset,
        rss_growth_mb_per_min,
        orchestrator_lock_timeout,
        worker_lock_timeout,
        rate,
        max_in_flight,
        iterations
    );
    p.abort_on_fail |= args.abort_on_fail;
    p
}

/// Refuse open-loop settings a closed loop would silently ignore.
fn check_open_flags(args: &Args, open_loop: bool) -> Result<(), PlanError> {
    if !open_loop && args.arrival.is_some() {
        return Err(PlanError::Invalid("--arrival needs --rate (it spaces open-loop starts)".into()));
    }
    if !open_loop && args.max_in_flight.is_some() {
        return Err(PlanError::Invalid(
            "--max-in-flight needs --rate (a closed loop keeps --max-concurrent in flight)".into(),
        ));
    }
    Ok(())
}

/// The load stages of the command line over the profile's: `--stages`
/// replaces the profile's load, `--rate` or `--max-concurrent` replace its
/// stages.
fn apply_stages(args: &Args, p: &mut Profile) -> Result<(), PlanError> {
    if let Some(text) = &args.stages {
        if args.duration.is_some() && !loadgen_common::stages::StagePlan::is_shape(text) {
            return Err(PlanError::Invalid(
                "--duration and explicit --stages exclude each other: the stages set the duration (a shape such as ramp:50/s spans --duration)"
                    .into(),
            ));
        }
        p.stages = Some(text.clone());
        p.rate = None;
    } else if args.rate.is_some() || args.max_concurrent.is_some() {
        p.stages = None;
    }
    p.settle_stages()?;
    Ok(())
}

/// The profile with the command line's overrides applied, checked.
pub fn profile(args: &Args) -> Result<Profile, PlanError> {
    profile_or(args, None)
}

/// [`profile`], with `fallback` when the command line names none.
pub(super) fn profile_or(args: &Args, fallback: Option<&str>) -> Result<Profile, PlanError> {
    let mut p = apply_overrides(args, selected(args, fallback)?);
    apply_stages(args, &mut p)?;
    p.validate()?;
    check_open_flags(args, p.rate.is_some())?;
    Ok(p)
}

/// The workload overrides of the command line.
pub fn workload_overrides(args: &Args) -> WorkloadOverrides {
    WorkloadOverrides {
        scenario: args.scenario.clone(),
        set: args.set.clone(),
        tasks: args.tasks,
        activity_delay: args.activity_delay,
        seed: args.seed,
    }
}

/// The agents: local processes, or running ones with their token and TLS.
pub fn agents(args: &Args) -> Result<AgentSource, PlanError> {
    // A token given is checked as the agents check theirs, before anything starts.
    if let Some(token) = &args.token {
        loadgen_common::auth::validate_agent_token(token).map_err(PlanError::Invalid)?;
    }
    match args.local {
        Some(0) => Err(PlanError::Invalid("--local needs at least 1 agent".into())),
        Some(count) => {
            // --build: the build's agent, made once the plan is checked.
            let bin = match &args.build {
                Some(_) => std::path::PathBuf::new(),
                None => crate::agents::local::find_agent_binary(args.agent_bin.as_deref())?,
            };
            // Agents we spawn get a fresh token of their own, and plain
            // HTTP/2 on loopback.
            let token = args.token.clone().unwrap_or_else(loadgen_common::auth::new_token);
            Ok(AgentSource::Local { count, bin, token, env: Vec::new() })
        }
        None => {
            let entries = crate::agents::parse_agent_list(&args.agents)?;
            if args.database_url.is_none() {
                return Err(PlanError::Invalid(
                    "--agents needs --database-url (or DATABASE_URL): the coordinator prepares the schema the remote agents use"
                        .into(),
                ));
            }
            let Some(token) = args.token.clone() else {
                return Err(PlanError::Invalid(
                    "--agents needs the agents' shared token: set LOADGEN_TOKEN (or pass --token)".into(),
                ));
            };
            let tls = match &args.tls_ca {
                Some(path) => {
                    let ca = std::fs::read(path)
                        .map_err(|e| PlanError::Invalid(format!("cannot read --tls-ca {}: {e}", path.display())))?;
                    Some((ca, args.tls_domain.clone()))
                }
                None => None,
            };
            if args.expect_agents == Some(0) {
                return Err(PlanError::Invalid("--expect-agents needs at least 1 agent".into()));
            }
            Ok(AgentSource::Remote {
                entries,
                expect: args.expect_agents,
                timeout: args.agents_timeout,
                access: Access { token, tls },
            })
        }
    }
}

/// The result files: --json, --report and --output, each renderer known.
pub fn outputs(args: &Args) -> Result<Outputs, PlanError> {
    let mut targets: Vec<Target> =
        args.json.iter().map(|p| Target { format: "json".into(), path: p.clone(), flag: "--json" }).collect();
    targets.extend(args.report.iter().map(|p| Target { format: "html".into(), path: p.clone(), flag: "--report" }));
    for (format, path) in &args.output {
        if crate::report::find(format).is_none() {
            return Err(PlanError::Invalid(format!(
                "--output {format}={path}: unknown format {format:?} (known: {})",
                crate::report::names().join(", ")
            )));
        }
        targets.push(Target { format: format.clone(), path: path.into(), flag: "--output" });
    }
    let metrics =
        args.metrics_listen.as_deref().map(crate::exporter::parse_address).transpose().map_err(PlanError::Invalid)?;
    let outputs = Outputs { targets, hlog_dir: args.hlog_dir.clone(), live: args.live, metrics, linger: args.linger };
    outputs.check()?;
    Ok(outputs)
}

/// The whole plan of a run (or suite).
pub fn run_plan(args: &Args) -> Result<RunPlan, PlanError> {
    // Said before the agents' own checks, which would ask for a database URL.
    if args.provider.in_agent() && !args.agents.is_empty() {
        return Err(in_agent_is_local(args.provider));
    }
    plan_for(args, profile(args)?, agents(args)?)
}

pub(super) fn in_agent_is_local(p: crate::plan::ProviderKind) -> PlanError {
    PlanError::Invalid(format!(
        "--provider {} is process-local: it runs with --local 1 (several runtimes share it with --runtimes-per-agent)",
        p.as_str()
    ))
}

/// The plan of a run of `profile` (already overridden and checked).
pub(super) fn plan_for(args: &Args, profile: Profile, agents: AgentSource) -> Result<RunPlan, PlanError> {
    let runs = profile.expand()?;
    let workload = WorkloadPlan::resolve(&profile, &workload_overrides(args))?;
    if args.completion_poll.is_zero() {
        return Err(PlanError::Invalid("--completion-poll must be positive".into()));
    }
    // A budget smaller than the fewest agents is refused before anything starts.
    slices::check(&profile, agents.fewest())?;
    let outputs = outputs(args)?;
    let faults = fault_schedule(args, &profile, &agents)?;
    let in_agent = args.provider.in_agent();
    if in_agent {
        let one_local = matches!(agents, AgentSource::Local { count: 1, .. });
        if !one_local {
            return Err(in_agent_is_local(args.provider));
        }
        if args.database_url.is_some() {
            return Err(PlanError::Invalid(format!(
                "--provider {} keeps its store in the agent: drop --database-url",
                args.provider.as_str()
            )));
        }
        if !faults.is_empty() {
            return Err(PlanError::Invalid("faults apply to Postgres runs: drop the faults or --provider".into()));
        }
    }
    Ok(RunPlan {
        profile,
        runs,
        workload,
        agents,
        database: if in_agent {
            Database::InAgent
        } else if args.ha {
            Database::Ha(args.replication)
        } else {
            args.database_url.clone().map_or(Database::Embedded, Database::Url)
        },
        outputs,
        tracking: Tracking {
            track: args.track || args.track_cloud,
            cloud: args.track_cloud,
            results_dir: args.results_dir.clone(),
            baseline: args.baseline.clone(),
            fail_on_regression: args.fail_on_regression,
        },
        // Nothing but the agent reaches a process-local store.
        completion_source: if in_agent { CompletionSource::Agent } else { args.completion_source },
        completion_poll: args.completion_poll,
        on_agent_loss: args.on_agent_loss,
        faults,
        keep_schema: args.keep_schema,
        agents_migrate: args.build.is_some(),
        expect_build: args.build.clone().filter(|b| crate::builds::is_release(b)),
        agent_builds: Default::default(),
        provider: args.provider,
        log: args.log.clone(),
    })
}

/// The faults of `--faults` (or the profile's), checked against what the
/// run can reach.
fn fault_schedule(args: &Args, profile: &Profile, agents: &AgentSource) -> Result<crate::faults::Schedule, PlanError> {
    use crate::faults::{Reach, Schedule, schedule};
    let specs = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PlanError::Invalid(format!("cannot read fault schedule {}: {e}", path.display())))?;
            schedule::parse(&text, &path.display().to_string()).map_err(PlanError::Invalid)?
        }
        None => profile.faults.clone(),
    };
    if specs.is_empty() {
        return Ok(Schedule::default());
    }
    if !profile.suite.is_empty() {
        return Err(PlanError::Invalid("faults apply to one run: drop --suite or the faults".into()));
    }
    let reach = Reach {
        embedded_db: args.database_url.is_none() && !args.ha,
        local_agents: match agents {
            AgentSource::Local { count, .. } => Some(*count),
            AgentSource::Remote { .. } => None,
        },
        duration: profile.duration,
        ha: args.ha,
    };
    Schedule::resolve(&specs, &reach).map_err(PlanError::Invalid)
}

/// Commands that compare or step load run without faults, the flag's or the
/// profile's: `what` says what the command measures.
pub(super) fn refuse_faults(args: &Args, profile: &Profile, what: &str) -> Result<(), PlanError> {
    if args.faults.is_some() || !profile.faults.is_empty() {
        return Err(PlanError::Invalid(format!(
            "{what} without faults: drop --faults (or use a profile without them)"
        )));
    }
    Ok(())
}

/// A sweep's plan: the run plan every step shares, and its steps.
pub fn sweep_plan(s: &super::SweepArgs, args: &Args) -> Result<crate::sweep::SweepPlan, PlanError> {
    use crate::model::sweep::SweepMode;
    // Flags the sweep sets per step would be silently overridden.
    if args.duration.is_some() {
        return Err(PlanError::Invalid("a sweep's steps last --step-duration, not --duration".into()));
    }
    match s.mode {
        SweepMode::Rate if args.rate.is_some() => {
            return Err(PlanError::Invalid("a rate sweep sets the rate per step: give --steps or --start".into()));
        }
        SweepMode::Budget if args.max_concurrent.is_some() || args.rate.is_some() => {
            return Err(PlanError::Invalid(
                "a budget sweep sets --max-concurrent per step and runs closed loop: drop --max-concurrent/--rate"
                    .into(),
            ));
        }
        _ => {}
    }
    if s.step_duration.is_zero() {
        return Err(PlanError::Invalid("--step-duration must be positive".into()));
    }
    if s.slo_p99.is_zero() {
        return Err(PlanError::Invalid("--slo-p99 must be positive".into()));
    }
    let steps = offered_steps(s)?;
    if args.stages.is_some() {
        return Err(PlanError::Invalid("a sweep steps its own load: drop --stages".into()));
    }
    let mut p = apply_overrides(args, selected(args, None)?);
    // A fault in every step would judge the knee by the fault, and an agent
    // killed as planned would fail the step.
    refuse_faults(args, &p, "a sweep measures capacity")?;
    p.stages = None;
    p.duration = s.step_duration;
    // Each step sets the rate (or the budget); check the plan with the first.
    let first = steps.first().copied().unwrap_or(1.0);
    match s.mode {
        SweepMode::Rate => p.rate = Some(first),
        SweepMode::Budget => {
            p.rate = None;
            p.max_concurrent = first.round().max(1.0) as u64;
        }
    }
    p.validate()?;
    check_open_flags(args, s.mode == SweepMode::Rate)?;
    if !p.suite.is_empty() {
        return Err(PlanError::Invalid("a sweep keeps one dispatcher setting: drop --suite".into()));
    }
    let mut run = plan_for(args, p, agents(args)?)?;
    run.tracking = Tracking::default();
    Ok(crate::sweep::SweepPlan { run, mode: s.mode, steps, slo_p99: s.slo_p99, min_gain_pct: s.min_gain_pct })
}

/// The offered load of each sweep step, checked.
pub fn offered_steps(s: &super::SweepArgs) -> Result<Vec<f64>, PlanError> {
    use crate::model::sweep::SweepMode;
    let parse = |t: &str| -> Result<f64, PlanError> {
        match s.mode {
            SweepMode::Rate => loadgen_common::units::parse_rate(t).map_err(|e| PlanError::Invalid(e.to_string())),
            SweepMode::Budget => match t.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n as f64),
                _ => Err(PlanError::Invalid(format!(
                    "budget step {t:?}: expected a whole number of orchestrations in flight"
                ))),
            },
        }
    };
    let steps = match &s.steps {
        Some(list) => list.iter().map(|t| parse(t)).collect::<Result<Vec<_>, _>>()?,
        None => {
            if !(s.factor.is_finite() && s.factor > 1.0) {
                return Err(PlanError::Invalid(format!("--factor {} must be greater than 1", s.factor)));
            }
            if s.max_steps == 0 || s.max_steps > 50 {
                return Err(PlanError::Invalid("--max-steps must be 1..50".into()));
            }
            let mut steps = crate::sweep::geometric(parse(&s.start)?, s.factor, s.max_steps);
            if s.mode == SweepMode::Budget {
                steps = steps.into_iter().map(f64::round).collect();
                steps.dedup();
            }
            steps
        }
    };
    if steps.is_empty() {
        return Err(PlanError::Invalid("--steps is empty".into()));
    }
    if steps.windows(2).any(|w| w[1] <= w[0]) {
        return Err(PlanError::Invalid("sweep steps must increase".into()));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn plan(argv: &[&str]) -> Result<RunPlan, PlanError> {
        let mut full = vec!["coordinator", "--agent-bin", "/bin/sh"];
        full.extend_from_slice(argv);
        run_plan(&Cli::try_parse_from(full).expect("parse").run)
    }

    #[test]
    fn a_plan_resolves_the_profile_workload_and_agents() {
        let p =
            plan(&["--local", "3", "--profile", "light", "--max-concurrent", "7", "--set", "tasks=4"]).expect("plan");
        assert_eq!((p.profile.max_concurrent, p.runs.len(), p.agents.fewest()), (7, 1, 3));
        assert_eq!(p.workload.resolved.get("tasks").map(String::as_str), Some("4"));
        assert!(matches!(p.database, Database::Embedded));
        let suite = plan(&["--local", "1", "--profile", "suite"]).expect("suite");
        assert_eq!(suite.runs.iter().map(Profile::dispatchers).collect::<Vec<_>>(), ["1:1", "2:2", "4:4"]);
    }

    #[test]
    fn bad_plans_are_refused_with_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (&["--local", "3", "--max-concurrent", "2"], "budget 2 is smaller than the number of agents (3)"),
            (&["--local", "1", "--arrival", "poisson"], "--arrival needs --rate"),
            (&["--local", "1", "--max-in-flight", "5"], "--max-in-flight needs --rate"),
            (&["--local", "1", "--scenario", "nope"], "unknown scenario \"nope\""),
            (&["--local", "1", "--set", "taks=2"], "scenario fanout has no option \"taks\""),
            (&["--local", "1", "--output", "yaml=x.yaml"], "unknown format \"yaml\""),
            (&["--local", "0"], "--local needs at least 1 agent"),
            (&["--local", "2", "--iterations", "1"], "--iterations 1 is smaller than the number of agents (2)"),
            (&["--agents", "a:1"], "--agents needs --database-url"),
        ];
        for (argv, want) in cases {
            let e = plan(argv).expect_err(want);
            assert!(e.to_string().contains(want), "{argv:?}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
    }
}
