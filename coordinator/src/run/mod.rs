//! Runs from start to finish. [`run`] opens the session (database and
//! agents), carries out each run of the plan (one, or one per suite
//! combination) with [`run_once`], and closes the session on every path
//! (success, error, Ctrl-C). A run's life, phase by phase:
//!
//! 1. begin: a fresh schema, migrated once; the database's counters;
//! 2. prepare ([`prepare`]): each agent gets its slice and must understand
//!    the workload exactly as the coordinator does;
//! 3. start and follow ([`stream`], [`live`]): every agent starts at one
//!    instant; intervals are folded as they stream in; lost agents noticed;
//! 4. settle ([`settle`]): a lost agent's orchestrations are finished by the
//!    others (bounded);
//! 5. release, audit ([`crate::db::audit`]) and assemble ([`assemble`]) the
//!    report with its gates.
//!
//! - [`session`]: what a coordinator brings up and must take down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgen_common::schema::{new_run_id, schema_for_run};
use loadgen_common::secret;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::audit::record::RunRecord;
use crate::db::audit::{self, AuditInput};
use crate::db::{self, watch::DbWatch};
use crate::error::CoordinatorError;
use crate::gates;
use crate::model::{Environment, IntervalLogs, RunReport, WorkloadReport};
use crate::notice::{Notice, Observer};
use crate::plan::{CompletionTracking, Profile, RunPlan, slices};
use completions::ClusterTracker;

pub mod assemble;
pub mod completions;
pub mod live;
pub mod prepare;
pub mod session;
pub mod settle;
pub mod stream;

use session::Session;
use stream::{Follow, Followed};

/// Delay between sending Run to every agent and the common start instant.
const START_DELAY: Duration = Duration::from_millis(500);
/// Slack on top of duration + drain timeout before the run is declared hung.
const RUN_SLACK: Duration = Duration::from_secs(30);

/// What the runs of one invocation produced.
#[derive(Debug)]
pub struct Outcome {
    /// The resolved profile (a suite keeps its combination list here).
    pub profile: Profile,
    /// One report per run, in order.
    pub runs: Vec<RunReport>,
    /// Interval histograms per run, when .hlog files were asked for.
    pub logs: Vec<IntervalLogs>,
}

impl Outcome {
    /// True when the profile is a suite (several runs compared).
    pub fn is_suite(&self) -> bool {
        !self.profile.suite.is_empty()
    }

    /// True when every run passed its gates.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(|r| r.passed)
    }
}

/// Carry out the runs `plan` describes. Returns their reports (gates
/// included) or why they could not be carried out. Cancelling `shutdown`
/// interrupts; everything brought up is taken down on every path.
pub async fn run(plan: &RunPlan, obs: &dyn Observer, shutdown: CancellationToken) -> Result<Outcome, CoordinatorError> {
    let mut session = Session::default();
    let result = tokio::select! {
        r = execute(plan, &mut session, obs) => r,
        _ = shutdown.cancelled() => Err(CoordinatorError::Interrupted),
    };
    session.close(obs).await;
    let (runs, logs) = result?;
    Ok(Outcome { profile: plan.profile.clone(), runs, logs })
}

async fn execute(
    plan: &RunPlan,
    session: &mut Session,
    obs: &dyn Observer,
) -> Result<(Vec<RunReport>, Vec<IntervalLogs>), CoordinatorError> {
    session.open(plan, &plan.profile, obs).await?;
    let mut reports = Vec::with_capacity(plan.runs.len());
    let mut logs = Vec::new();
    for (i, profile) in plan.runs.iter().enumerate() {
        let label = if plan.runs.len() > 1 {
            format!("suite run, dispatchers {}", profile.dispatchers())
        } else {
            String::new()
        };
        let run_id = new_run_id();
        let span = tracing::info_span!("run", run = %run_id);
        let (report, log) =
            run_once(session, plan, profile, &run_id, (i + 1, plan.runs.len(), &label), obs).instrument(span).await?;
        session.end_run(obs).await;
        reports.push(report);
        logs.extend(log);
    }
    Ok((reports, logs))
}

/// How a run describes its load for people.
fn describe_load(p: &Profile, slices: &[crate::plan::AgentSlice]) -> String {
    let split = slices.iter().map(|s| s.concurrency.to_string()).collect::<Vec<_>>().join("+");
    let d = loadgen_common::units::format_duration(p.duration);
    match p.rate {
        None => format!("closed loop, {} in flight ({split}), {d} of load", p.max_concurrent),
        Some(rate) => format!(
            "open loop, {} {} arrivals, at most {} in flight ({split}), {d} of load",
            loadgen_common::units::format_rate(rate),
            p.arrival.as_str(),
            p.in_flight_budget()
        ),
    }
}

/// One run on a fresh schema; `nth` is (n, of, label) within its suite or sweep.
pub(crate) async fn run_once(
    session: &mut Session,
    plan: &RunPlan,
    profile: &Profile,
    run_id: &str,
    nth: (usize, usize, &str),
    obs: &dyn Observer,
) -> Result<(RunReport, Option<IntervalLogs>), CoordinatorError> {
    // 1. Begin.
    let run_id = run_id.to_string();
    let schema = schema_for_run(&run_id);
    let url = session.url.clone();
    let scrub = |e: CoordinatorError| match e {
        CoordinatorError::Database(m) => CoordinatorError::Database(secret::scrub(&m, &url)),
        other => other,
    };
    let provider = session.begin_run(&run_id, &schema).await?;
    let before = db::xact_counters(&provider).await.map_err(scrub)?;
    let postgres_version = db::server_version(&provider).await.unwrap_or_default();
    let postgres_settings = db::watch::settings(&provider).await;
    let agents = session.links.len();
    let seed = plan.workload.seed_for(&run_id);
    let slices = slices::slices(profile, agents, seed)?;
    let workload = plan.workload.build(&run_id, seed, agents as u32)?;
    let described = workload.describe(seed);
    obs.notice(&Notice::RunStarting {
        run_id: &run_id,
        schema: &schema,
        agents,
        load: describe_load(profile, &slices),
        n: nth.0,
        of: nth.1,
        label: nth.2,
    });

    // 2. Prepare.
    let request = prepare::RunRequest { run_id: &run_id, schema: &schema, seed, profile, plan, workload: &described };
    prepare::prepare_all(&session.links, &slices, &request).await?;
    let mut record = RunRecord {
        run_id: run_id.clone(),
        profile: profile.name.clone(),
        scenario: plan.workload.scenario.clone(),
        options: plan.workload.given.clone(),
        seed,
        agents: agents as u32,
        ..Default::default()
    };
    audit::record::record(&provider, &record).await.map_err(scrub)?;

    // 3. Start and follow.
    let (cpu0, wall0) = (loadgen_common::process::cpu_time(), Instant::now());
    let started_at = chrono::Utc::now() + START_DELAY;
    let (controls, streams) = stream::start_all(&session.links, &run_id, START_DELAY).await?;
    let started = Instant::now() + START_DELAY;
    let watch = DbWatch::start(Arc::clone(&provider), started);
    let load_plan = profile.load_plan();
    let tracker = (plan.completion_tracking == CompletionTracking::Cluster)
        .then(|| ClusterTracker::start(Arc::clone(&provider), &schema, controls.routes(), plan.completion_poll));
    let mut live = live::Live::new(agents, started, plan.outputs.hlog_dir.is_some());
    let follow = Follow {
        links: &session.links,
        policy: plan.on_agent_loss,
        started,
        bound: profile.duration + profile.drain_timeout + START_DELAY + RUN_SLACK,
        db: Some(watch.latest.clone()),
        tracker: tracker.as_ref(),
        load: Some(&load_plan),
        obs,
    };
    let agent_pids = session.local.as_ref().map(|l| l.pids()).unwrap_or_default();
    let injected = async {
        if plan.faults.is_empty() {
            return Vec::new();
        }
        let targets = crate::faults::inject::Targets {
            provider: Arc::clone(&provider),
            embedded: session.embedded.as_mut(),
            agent_pids,
            routes: controls.routes(),
        };
        crate::faults::inject::run(&plan.faults, started, targets, obs).await
    };
    let (followed, fault_events) = tokio::join!(stream::follow(follow, streams, &controls, &mut live), injected);
    let sampled = watch.finish().await;
    let tracked = match tracker {
        Some(t) => t.finish().await,
        None => Default::default(),
    };
    let coordinator = crate::model::CoordinatorCost {
        cpu_s: loadgen_common::process::cpu_time().saturating_sub(cpu0).as_secs_f64(),
        wall_s: wall0.elapsed().as_secs_f64(),
        rss_mb: loadgen_common::process::rss_bytes() as f64 / (1024.0 * 1024.0),
    };
    let mut db_timeline = sampled.samples;
    let followed = followed?;
    live.finish();
    let stages = assemble::stages(&load_plan, &mut live.merged);
    let faults = crate::faults::impact::judge(&fault_events, &live.merged);

    // 4. Settle what lost agents left behind.
    let orphaned = settle::orphaned(&followed, |i| {
        live.agents.get(i).map_or((Default::default(), 0), |a| (a.counts(), a.in_flight))
    });
    let mut lost =
        settle::settle(&provider, &run_id, &session.links, &orphaned, started_at, profile.drain_timeout, obs).await?;
    for l in &mut lost {
        l.planned = plan.faults.targets_agent(l.index);
    }

    // 5. Release, audit, assemble.
    let finished: Vec<usize> =
        followed.iter().enumerate().filter(|(_, f)| matches!(f, Followed::Finished(_))).map(|(i, _)| i).collect();
    let late = session.release_agents_among(&run_id, &finished).await;
    controls.close();
    let counters = db::xact_counters(&provider).await.map_err(scrub)?.since(&before);
    let mut m = assemble::merge(&session.links, &slices, &live, &followed, &lost, &late)?;
    m.merged.counts.status_query_errors += tracked.errors;
    for s in &mut db_timeline {
        s.completed = live.merged.iter().filter(|p| p.t_s <= s.t_s + 0.5).map(|p| p.completed).sum();
    }
    let logs = plan.outputs.hlog_dir.is_some().then(|| IntervalLogs {
        run_id: run_id.clone(),
        start: std::time::SystemTime::from(started_at),
        merged: std::mem::take(&mut live.merged_hlog),
        agents: live.agents.iter_mut().map(|a| std::mem::take(&mut a.hlog)).collect(),
    });
    let c = &m.merged.counts;
    record.launched = c.launched;
    record.completed = Some(c.completed);
    // A lost agent's last executions were never reported: the count is then
    // a lower bound the audit cannot hold the history to.
    record.activities_executed = if lost.is_empty() { c.activities } else { 0 };
    record.facts = m.facts.clone();
    audit::record::record(&provider, &record).await.map_err(scrub)?;
    let input = AuditInput {
        run_id: Some(run_id.clone()),
        scenario: Some(Arc::clone(&workload.scenario)),
        facts: record.facts.clone(),
        launched: record.launched,
        completed: record.completed,
        activities_executed: record.activities_executed,
    };
    let outcome = audit::audit(&provider, &input).await.map_err(scrub)?;
    assemble::add_audit(&mut m.scenarios, &outcome);
    let overhead = assemble::Overhead {
        tracking: plan.completion_tracking,
        coordinator_queries: tracked.queries,
        sampling_queries: sampled.queries,
    };
    let db_load = assemble::db_load(&counters, &m.merged, overhead);
    let contention = assemble::contention(&counters, &db_timeline, &m.provider_errors);
    let mut gates = gates::evaluate_workload(profile, &m.merged, &outcome.audit, workload.scenario.has_instances());
    if !lost.is_empty() {
        gates.push(gates::agents_gate(agents, &lost));
    }
    if !faults.is_empty() {
        gates.push(gates::faults_gate(&faults));
    }
    let warnings = gates::memory_warnings(profile, &m.agents);
    let hello = session.links.first().map(|l| l.hello.clone()).unwrap_or_default();
    let report = RunReport {
        tool_version: loadgen_common::TOOL_VERSION.to_string(),
        run_id,
        schema,
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        database: session.database.clone(),
        duroxide_version: hello.duroxide_version,
        duroxide_pg_version: hello.duroxide_pg_version,
        profile: profile.clone(),
        workload: WorkloadReport { scenario: plan.workload.scenario.clone(), options: workload.options, seed },
        agents: m.agents,
        passed: gates.iter().all(|g| g.passed),
        gates,
        merged: m.merged,
        scenarios: m.scenarios,
        audit: outcome.audit,
        db_load,
        contention,
        warnings,
        comparison: None,
        environment: Environment {
            db_host: session.db_host.clone(),
            cloud: plan.tracking.cloud,
            commit: None,
            branch: None,
            machine: loadgen_common::process::hostname(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            postgres_version,
        },
        lost_agents: lost,
        provider_errors: m.provider_errors,
        timeline: crate::model::Timeline {
            merged: live.merged,
            agents: live.agents.into_iter().map(|a| a.series).collect(),
        },
        db_timeline,
        spectrum: m.spectrum,
        postgres_settings,
        coordinator,
        stages,
        faults,
    };
    Ok((report, logs))
}
