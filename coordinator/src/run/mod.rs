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
pub mod inspect;
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

/// Test-only: treat the run's schema as one the coordinator cannot read, so
/// the fallback (tracking and audit through the agents' client API) runs on
/// an ordinary schema.
const CLIENT_API_KNOB: &str = "LOADGEN_TEST_CLIENT_API";

/// Each agent's share of the load: its rate (open loop) or its in-flight
/// slice (closed loop) over the cluster's.
fn load_shares(slices: &[crate::plan::AgentSlice]) -> Vec<f64> {
    let each: Vec<f64> = slices.iter().map(|s| s.rate.unwrap_or(s.concurrency as f64)).collect();
    let total: f64 = each.iter().sum();
    each.iter().map(|x| if total > 0.0 { x / total } else { 0.0 }).collect()
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
    // The run's schema (Postgres), or a store that lives in the agent
    // (SQLite): then nothing below reads a database but the agent's Inspect.
    let (store, sqlite_path) = if plan.provider.is_sqlite() {
        (None, session.begin_store_run(&run_id))
    } else {
        (Some(session.begin_run(&run_id, &schema, plan.agents_migrate).await?), None)
    };
    let (postgres_version, postgres_settings, statistics) = match &store {
        Some(db) => (
            db::server_version(db).await.unwrap_or_default(),
            db::watch::settings(db).await,
            Some(db::procedures::availability(db).await),
        ),
        None => (String::new(), Default::default(), None),
    };
    let agents = session.links.len();
    let seed = plan.workload.seed_for(&run_id);
    let slices = slices::slices(profile, agents, seed)?;
    let workload = plan.workload.build(&run_id, seed, agents as u32)?;
    let described = workload.describe(seed);
    let place = match &store {
        Some(_) => format!("schema {schema}"),
        None => format!("the agent's {} store", plan.provider.as_str()),
    };
    obs.notice(&Notice::RunStarting {
        run_id: &run_id,
        schema: &place,
        agents,
        load: describe_load(profile, &slices),
        n: nth.0,
        of: nth.1,
        label: nth.2,
    });

    // 2. Prepare.
    let request = prepare::RunRequest {
        run_id: &run_id,
        schema: &schema,
        seed,
        profile,
        plan,
        workload: &described,
        sqlite_path: sqlite_path.as_deref(),
    };
    prepare::prepare_all(&session.links, &slices, &request).await?;
    let check = match &store {
        Some(_) if std::env::var_os(CLIENT_API_KNOB).is_some() => db::SchemaCheck {
            notes: vec![format!(
                "{CLIENT_API_KNOB}: completions tracked and the audit read through duroxide's client API"
            )],
            readable: false,
        },
        Some(db) if plan.agents_migrate => db::agents_schema(&url, db).await,
        _ => db::SchemaCheck { notes: Vec::new(), readable: true },
    };
    // A schema the coordinator cannot read is tracked and audited through
    // the agents' client API, like a store only they reach.
    let through_agents = store.is_none() || !check.readable;
    let schema_notes = check.notes;
    // Counted from here: the migrations (an A/B build's own) are not the run's.
    let before = match &store {
        Some(db) => db::xact_counters(db).await.map_err(scrub)?,
        None => Default::default(),
    };
    let mut record = RunRecord {
        run_id: run_id.clone(),
        profile: profile.name.clone(),
        scenario: plan.workload.scenario.clone(),
        options: plan.workload.given.clone(),
        seed,
        agents: agents as u32,
        ..Default::default()
    };
    if let Some(db) = &store {
        audit::record::record(db, &record).await.map_err(scrub)?;
    }

    // 3. Start and follow.
    let procedures_before = match (&store, &statistics) {
        (Some(db), Some(st)) => Some(db::procedures::snapshot(db, &schema, st).await),
        _ => None,
    };
    let (cpu0, wall0) = (loadgen_common::process::cpu_time(), Instant::now());
    let started_at = chrono::Utc::now() + START_DELAY;
    let (controls, streams) =
        stream::start_all_tracking(&session.links, &run_id, START_DELAY, store.is_some() && through_agents).await?;
    let started = Instant::now() + START_DELAY;
    let watch = store.as_ref().map(|db| {
        let probe = statistics.as_ref().and_then(|st| db::procedures::FetchProbe::new(&schema, st));
        DbWatch::start(Arc::clone(db), started, probe)
    });
    let load_plan = profile.load_plan();
    let cluster = plan.completion_tracking == CompletionTracking::Cluster && !through_agents;
    let tracking = if cluster { CompletionTracking::Cluster } else { CompletionTracking::Agent };
    let tracker = store
        .as_ref()
        .filter(|_| cluster)
        .map(|db| ClusterTracker::start(Arc::clone(db), &schema, controls.routes(), plan.completion_poll));
    let mut live = live::Live::new(agents, started, plan.outputs.hlog_dir.is_some());
    let (fault_done_tx, fault_done) = tokio::sync::mpsc::unbounded_channel();
    let follow = Follow {
        links: &session.links,
        policy: plan.on_agent_loss,
        started,
        bound: profile.duration + profile.drain_timeout + START_DELAY + RUN_SLACK,
        db: watch.as_ref().map(|w| w.latest.clone()),
        tracker: tracker.as_ref(),
        load: Some(&load_plan),
        fault_done: Some(fault_done_tx),
        obs,
    };
    let agent_pids = session.local.as_ref().map(|l| l.pids()).unwrap_or_default();
    let injected = async {
        if plan.faults.is_empty() {
            return Vec::new();
        }
        let targets = crate::injector::RunTargets {
            provider: store.clone(),
            embedded: session.embedded.as_mut(),
            agent_pids,
            routes: controls.routes(),
            load_shares: load_shares(&slices),
            fault_done,
        };
        crate::injector::run(&plan.faults, started, targets, obs).await
    };
    let (followed, fault_events) = tokio::join!(stream::follow(follow, streams, &controls, &mut live), injected);
    let sampled = match watch {
        Some(w) => w.finish().await,
        None => Default::default(),
    };
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
    let faults = crate::injector::impact::judge(&fault_events, &live.merged);

    // 4. Settle what lost agents left behind.
    let orphaned = settle::orphaned(&followed, |i| {
        live.agents.get(i).map_or((Default::default(), 0), |a| (a.counts(), a.in_flight))
    });
    let mut lost = match &store {
        Some(db) => {
            settle::settle(db, &run_id, &session.links, &orphaned, started_at, profile.drain_timeout, obs).await?
        }
        // The store was in the lost agent: nothing is left to look at.
        None => settle::unsettled(&session.links, &orphaned),
    };
    for l in &mut lost {
        l.planned = plan.faults.targets_agent(l.index);
    }

    // 5. Release, audit, assemble.
    let finished: Vec<usize> =
        followed.iter().enumerate().filter(|(_, f)| matches!(f, Followed::Finished(_))).map(|(i, _)| i).collect();
    // A store in the agent is read before its release drops it.
    let inspected = match (through_agents, session.links.first()) {
        (true, Some(link)) => {
            Some(inspect::inspect(link, &run_id, &audit::inspected::metric_events(workload.scenario.as_ref())).await?)
        }
        _ => None,
    };
    let late = session.release_agents_among(&run_id, &finished).await;
    controls.close();
    let (counters, procedures_after) = match &store {
        Some(db) => (
            db::xact_counters(db).await.map_err(scrub)?.since(&before),
            match &statistics {
                Some(st) => Some(db::procedures::snapshot(db, &schema, st).await),
                None => None,
            },
        ),
        None => (Default::default(), None),
    };
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
    if let Some(db) = &store {
        audit::record::record(db, &record).await.map_err(scrub)?;
    }
    let input = AuditInput {
        run_id: Some(run_id.clone()),
        scenario: Some(Arc::clone(&workload.scenario)),
        facts: record.facts.clone(),
        launched: record.launched,
        completed: record.completed,
        activities_executed: record.activities_executed,
    };
    let outcome = match (&store, inspected) {
        (_, Some(found)) => audit::inspected::audit_inspected(found, &input),
        (Some(db), None) => audit::audit(db, &input).await.map_err(scrub)?,
        (None, None) => return Err(CoordinatorError::Local("no agent left to inspect the store".into())),
    };
    assemble::add_audit(&mut m.scenarios, &outcome);
    let overhead =
        assemble::Overhead { tracking, coordinator_queries: tracked.queries, sampling_queries: sampled.queries };
    let db_load = assemble::db_load(&counters, &m.merged, overhead);
    let contention = assemble::contention(&counters, &db_timeline, &m.provider_errors);
    let mut gates = gates::evaluate_workload(profile, &m.merged, &outcome.audit, workload.scenario.has_instances());
    if !lost.is_empty() {
        gates.push(gates::agents_gate(agents, &lost));
    }
    if !faults.is_empty() {
        gates.push(gates::faults_gate(&faults));
    }
    let mut warnings = gates::memory_warnings(profile, &m.agents);
    warnings.extend(schema_notes);
    let hello = session.links.first().map(|l| l.hello.clone()).unwrap_or_default();
    let procedures = match (&statistics, &procedures_before, &procedures_after) {
        (Some(st), Some(b), Some(a)) => Some(db::procedures::report(st, &schema, b, a, &db_timeline)),
        _ => None,
    };
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
        procedures,
        provider: plan.provider,
    };
    Ok((report, logs))
}
