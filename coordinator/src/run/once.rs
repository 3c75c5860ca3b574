//! One run on a fresh store, phase by phase: [`begin`] (the store, the
//! slices, the workload), [`prepare`] (every agent, the schema check, the
//! counters before), [`start_and_follow`] (the common start, the live
//! fold, the faults), [`conclude`] (what lost agents left, release, the
//! audit) and [`report`]. Each phase asks the [`RunStore`] and never
//! branches on where the state lives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loadgen_common::schema::schema_for_run;

use super::abort::Judge;
use super::completions::TrackerStats;
use super::live::Live;
use super::session::Session;
use super::store::{self, RunStore, Watchers};
use super::stream::{self, Follow, Followed};
use super::{RUN_SLACK, START_DELAY, announce_load, assemble, evidence, load_shares, settle};
use crate::agents::calls;
use crate::agents::run::Controls;
use crate::db::audit::record::RunRecord;
use crate::db::audit::{self, AuditInput, AuditOutcome};
use crate::db::procedures::Snapshot;
use crate::db::{SchemaCheck, XactCounters};
use crate::error::CoordinatorError;
use crate::gates;
use crate::model::{
    Aborted, CoordinatorCost, DbSample, Environment, FaultReport, IntervalLogs, LostAgent, RunReport, StagesReport,
    WorkloadReport,
};
use crate::notice::{Notice, Observer};
use crate::plan::{AgentSlice, CompletionSource, Profile, ProfilePlan, RunPlan, slices};
use loadgen_scenarios::Built;

/// How long the end of a run waits for the released agents' connections to
/// close (and send the server their last counters) before it reads them.
const STATISTICS_FLUSH_BOUND: Duration = Duration::from_secs(3);

/// One run on a fresh store; `nth` is (n, of, label) within its suite or sweep.
pub(crate) async fn run_once(
    session: &mut Session,
    plan: &RunPlan,
    profile: &Profile,
    run_id: &str,
    nth: (usize, usize, &str),
    obs: &dyn Observer,
) -> Result<(RunReport, Option<IntervalLogs>), CoordinatorError> {
    // Resolved once: every phase, the gates and the report read the plan.
    let profile = &ProfilePlan::resolve(profile.clone())?;
    let begun = begin(session, plan, profile, run_id, nth, obs).await?;
    let prepared = prepare(session, plan, profile, &begun).await?;
    let mut ran = start_and_follow(session, plan, profile, &begun, &prepared, obs).await?;
    let concluded = conclude(session, plan, profile, &begun, &prepared, &mut ran, obs).await?;
    let (report, logs) = report(session, plan, profile, begun, prepared, ran, concluded);
    obs.notice(&Notice::RunEnded(&report));
    Ok((report, logs))
}

/// What a run begins with.
struct Begun {
    run_id: String,
    schema: String,
    store: Box<dyn RunStore>,
    /// The server's version and settings.
    server: (String, std::collections::BTreeMap<String, String>),
    seed: u64,
    slices: Vec<AgentSlice>,
    workload: Built,
}

/// Phase 1: a fresh store, each agent's slice, the workload built for this run.
async fn begin(
    session: &mut Session,
    plan: &RunPlan,
    profile: &ProfilePlan,
    run_id: &str,
    nth: (usize, usize, &str),
    obs: &dyn Observer,
) -> Result<Begun, CoordinatorError> {
    let schema = schema_for_run(run_id);
    let store = store::begin(session, plan, run_id, &schema).await?;
    let server = store.server().await;
    let agents = session.links.len();
    let seed = plan.workload.seed_for(run_id);
    let slices = slices::slices_of(&profile.load, profile.iterations, agents, seed)?;
    let workload = plan.workload.build(run_id, seed, agents as u32)?;
    obs.notice(&Notice::RunStarting {
        run_id,
        schema: &store.place(),
        agents,
        load: announce_load(profile, &slices),
        n: nth.0,
        of: nth.1,
        label: nth.2,
        profile: &profile.name,
        scenario: &plan.workload.scenario,
        builds: assemble::builds(&session.links),
    });
    Ok(Begun { run_id: run_id.to_string(), schema, store, server, seed, slices, workload })
}

/// What the run knows once every agent is prepared.
struct Prepared {
    check: SchemaCheck,
    /// Counters before the load (the migrations are not the run's).
    before: XactCounters,
    procedures_before: Option<Snapshot>,
    record: RunRecord,
    /// The run's schema notes leases handed out already expired.
    leases_watched: bool,
}

impl Prepared {
    /// Completions and the audit go through the agents.
    fn through_agents(&self) -> bool {
        !self.check.readable
    }
}

/// Phase 2: every agent prepared with its slice; what the coordinator can
/// read; the counters before; the run record kept beside the data.
async fn prepare(
    session: &Session,
    plan: &RunPlan,
    profile: &ProfilePlan,
    b: &Begun,
) -> Result<Prepared, CoordinatorError> {
    let described = b.workload.describe(b.seed);
    let request = calls::RunRequest {
        run_id: &b.run_id,
        schema: &b.schema,
        seed: b.seed,
        profile,
        plan,
        workload: &described,
        sqlite_path: b.store.agent_path(),
    };
    calls::prepare_all(&session.links, &b.slices, &request).await?;
    let check = b.store.check(plan).await;
    let leases_watched = match b.store.db() {
        Some(db) if check.readable => crate::db::leases::install(db)
            .await
            .map_err(|e| tracing::warn!(error = %e, "leases handed out expired will not be noted"))
            .is_ok(),
        _ => false,
    };
    let before = b.store.counters().await?;
    let record = RunRecord {
        run_id: b.run_id.clone(),
        profile: profile.name.clone(),
        scenario: plan.workload.scenario.clone(),
        options: plan.workload.given.clone(),
        seed: b.seed,
        agents: session.links.len() as u32,
        ..Default::default()
    };
    b.store.record(&record).await?;
    let procedures_before = b.store.procedures().await;
    Ok(Prepared { check, before, procedures_before, record, leases_watched })
}

/// What following the run gathered.
struct Ran {
    started_at: chrono::DateTime<chrono::Utc>,
    /// Closed once the agents are released.
    controls: Option<Controls>,
    followed: Vec<Followed>,
    live: Live,
    tracking: CompletionSource,
    sampled: crate::db::watch::Sampled,
    tracked: TrackerStats,
    /// Every instance the cluster tracker saw end (id, completed), when it ran.
    seen_ended: Option<Vec<crate::db::audit::acknowledged::Seen>>,
    coordinator: CoordinatorCost,
    stages: Option<StagesReport>,
    faults: Vec<FaultReport>,
    /// The gate `--abort-on-fail` saw lost.
    aborted: Option<Aborted>,
}

/// Phase 3: start every agent at one instant and follow them to the end,
/// with the database watched and the fault schedule applied alongside.
async fn start_and_follow(
    session: &mut Session,
    plan: &RunPlan,
    profile: &ProfilePlan,
    b: &Begun,
    p: &Prepared,
    obs: &dyn Observer,
) -> Result<Ran, CoordinatorError> {
    let (cpu0, wall0) = (loadgen_common::process::cpu_time(), Instant::now());
    let started_at = chrono::Utc::now() + START_DELAY;
    // Agents of a schema this build cannot read track through the client
    // API; an agent's own store, with its own query.
    let client_api = p.through_agents() && b.store.db().is_some();
    let (controls, streams) = stream::start_all(&session.links, &b.run_id, START_DELAY, client_api).await?;
    let started = Instant::now() + START_DELAY;
    let cluster = plan.completion_source == CompletionSource::Cluster && !p.through_agents();
    let tracking = if cluster { CompletionSource::Cluster } else { CompletionSource::Agent };
    let watchers =
        Watchers::start(b.store.as_ref(), started, cluster.then(|| (controls.routes(), plan.completion_poll)));
    let load_plan = profile.load.clone();
    let agents = session.links.len();
    let mut live = Live::new(agents, started, plan.outputs.hlog_dir.is_some());
    let mut judge = Judge::of(profile);
    if judge.is_some() {
        live.collect_closed();
    }
    let (fault_done_tx, fault_done) = tokio::sync::mpsc::unbounded_channel();
    let follow = Follow {
        links: &session.links,
        policy: plan.on_agent_loss,
        started,
        bound: profile.duration + profile.drain_timeout + START_DELAY + RUN_SLACK,
        db: watchers.latest(),
        tracker: watchers.tracker.as_ref(),
        load: Some(&load_plan),
        fault_done: Some(fault_done_tx),
        judge: judge.as_mut(),
        obs,
    };
    let agent_pids = session.local.as_ref().map(|l| l.pids()).unwrap_or_default();
    let injected = async {
        if plan.faults.is_empty() {
            return Vec::new();
        }
        let targets = crate::injector::RunTargets {
            provider: b.store.db().cloned(),
            server: session.host.as_mut().and_then(|h| h.server()),
            agent_pids,
            routes: controls.routes(),
            load_shares: load_shares(&b.slices),
            fault_done,
            builds: plan.agent_builds.clone(),
        };
        crate::injector::run(&plan.faults, started, targets, obs).await
    };
    let (followed, fault_events) = tokio::join!(stream::follow(follow, streams, &controls, &mut live), injected);
    let (sampled, tracked, seen_ended) = watchers.finish().await;
    let coordinator = CoordinatorCost {
        cpu_s: loadgen_common::process::cpu_time().saturating_sub(cpu0).as_secs_f64(),
        wall_s: wall0.elapsed().as_secs_f64(),
        rss_mb: loadgen_common::process::rss_bytes() as f64 / (1024.0 * 1024.0),
    };
    let followed = followed?;
    live.finish();
    let stages = assemble::stages(&load_plan, &mut live.merged);
    let faults = crate::injector::impact::judge(&fault_events, &live.merged);
    Ok(Ran {
        started_at,
        controls: Some(controls),
        followed,
        live,
        tracking,
        sampled,
        tracked,
        seen_ended,
        coordinator,
        stages,
        faults,
        aborted: judge.and_then(|j| j.lost),
    })
}

/// What the end of a run established.
struct Concluded {
    lost: Vec<LostAgent>,
    merged: assemble::Merged,
    outcome: AuditOutcome,
    counters: XactCounters,
    /// Times the server's statistics were reset during the run.
    stats_resets: u32,
    procedures_after: Option<Snapshot>,
    db_timeline: Vec<DbSample>,
    logs: Option<IntervalLogs>,
    /// The schema checked again after a rolling upgrade changed its build.
    schema_after: Option<SchemaCheck>,
}

/// Phases 4 and 5: what lost agents left, the agents released, the counters after, the
/// merge, and the audit (through the agent when only it reads the store).
async fn conclude(
    session: &Session,
    plan: &RunPlan,
    profile: &ProfilePlan,
    b: &Begun,
    p: &Prepared,
    ran: &mut Ran,
    obs: &dyn Observer,
) -> Result<Concluded, CoordinatorError> {
    let live = &mut ran.live;
    let orphaned = settle::orphaned(&ran.followed, |i| {
        live.agents.get(i).map_or((Default::default(), 0), |a| (a.counts(), a.in_flight))
    });
    let bound = profile.drain_timeout;
    let mut lost = b.store.settle(&b.run_id, &session.links, &orphaned, ran.started_at, bound, obs).await?;
    for l in &mut lost {
        l.planned = plan.faults.targets_agent(l.index);
    }
    let finished: Vec<usize> =
        ran.followed.iter().enumerate().filter(|(_, f)| matches!(f, Followed::Finished(_))).map(|(i, _)| i).collect();
    // A store in the agent is read before its release drops it.
    let metrics = audit::inspected::metric_events(b.workload.scenario.as_ref());
    let inspected = match (p.through_agents(), session.links.first()) {
        (true, Some(link)) => Some(calls::inspect(link, &b.run_id, &metrics).await?),
        _ => None,
    };
    let released = session.release_agents_among(&b.run_id, &finished).await;
    let late: Vec<u64> = released.iter().map(|r| r.late_activities).collect();
    if let Some(controls) = ran.controls.take() {
        controls.close();
    }
    // The released agents' connections send their last counters as they close.
    b.store.agents_disconnected(STATISTICS_FLUSH_BOUND).await;
    // Summed segment by segment: a crash restart resets the server's counters.
    let after = b.store.counters().await?;
    let observed: Vec<XactCounters> =
        std::iter::once(p.before).chain(ran.sampled.counters.iter().copied()).chain(std::iter::once(after)).collect();
    let (counters, stats_resets) = XactCounters::across(&observed);
    let procedures_after = b.store.procedures().await;
    let mut merged = assemble::merge(&session.links, &b.slices, live, &ran.followed, &lost, &late)?;
    merged.merged.counts.status_query_errors += ran.tracked.errors;
    let mut db_timeline = std::mem::take(&mut ran.sampled.samples);
    for s in &mut db_timeline {
        s.completed = live.merged.iter().filter(|t| t.t_s <= s.t_s + 0.5).map(|t| t.completed).sum();
    }
    let logs = plan.outputs.hlog_dir.is_some().then(|| IntervalLogs {
        run_id: b.run_id.clone(),
        start: std::time::SystemTime::from(ran.started_at),
        merged: std::mem::take(&mut live.merged_hlog),
        agents: live.agents.iter_mut().map(|a| std::mem::take(&mut a.hlog)).collect(),
    });
    let input = audit_input(b, &merged, &lost);
    b.store.record(&record_of(p, &input)).await?;
    let mut outcome = match inspected {
        Some(found) => audit::inspected::audit_inspected(found, &input),
        None => b.store.audit(&input).await?,
    };
    if let Some(db) = b.store.db() {
        let counted = merged.merged.counts.activities;
        let gathered = evidence::Gathered {
            redelivered: std::mem::take(&mut ran.sampled.redelivered),
            leases_watched: p.leases_watched,
            seen_ended: ran.seen_ended.take(),
            started_at: ran.started_at,
            ledger: evidence::ledger_of(std::mem::take(&mut live.ledger), released, &finished, &lost, counted),
        };
        evidence::check(db, &b.run_id, gathered, &mut ran.faults, &mut outcome).await?;
    }
    assemble::add_audit(&mut merged.scenarios, &outcome);
    // An upgrade mid-run migrated the schema again: what was said of it at
    // the start may no longer hold.
    let upgraded = !plan.faults.agent_builds().is_empty() && !p.check.notes.is_empty();
    let schema_after = if upgraded { Some(b.store.check(plan).await) } else { None };
    Ok(Concluded { lost, merged, outcome, counters, stats_resets, procedures_after, db_timeline, logs, schema_after })
}

/// What the audit holds the run to.
fn audit_input(b: &Begun, m: &assemble::Merged, lost: &[LostAgent]) -> AuditInput {
    let c = &m.merged.counts;
    AuditInput {
        run_id: Some(b.run_id.clone()),
        scenario: Some(Arc::clone(&b.workload.scenario)),
        facts: m.facts.clone(),
        launched: c.launched,
        completed: Some(c.completed),
        // A lost agent's last executions were never reported: the count is
        // then a lower bound the audit cannot hold the history to.
        activities_executed: if lost.is_empty() { c.activities } else { 0 },
    }
}

/// The run record as the run ended.
fn record_of(p: &Prepared, input: &AuditInput) -> RunRecord {
    RunRecord {
        launched: input.launched,
        completed: input.completed,
        activities_executed: input.activities_executed,
        facts: input.facts.clone(),
        ..p.record.clone()
    }
}

/// Phase 6: the report, with its gates.
fn report(
    session: &Session,
    plan: &RunPlan,
    profile: &ProfilePlan,
    b: Begun,
    p: Prepared,
    ran: Ran,
    c: Concluded,
) -> (RunReport, Option<IntervalLogs>) {
    let m = c.merged;
    let overhead = assemble::Overhead {
        tracking: ran.tracking,
        coordinator_queries: ran.tracked.queries,
        sampling_queries: ran.sampled.queries,
    };
    let mut db_load = assemble::db_load(&c.counters, &m.merged, overhead);
    db_load.stats_resets = c.stats_resets;
    let contention = assemble::contention(&c.counters, &c.db_timeline, &m.provider_errors);
    let mut gates = gates::evaluate_workload(profile, &m.merged, &c.outcome.audit, b.workload.scenario.has_instances());
    if !c.lost.is_empty() {
        gates.push(gates::agents_gate(session.links.len(), &c.lost));
    }
    if !ran.faults.is_empty() {
        gates.push(gates::faults_gate(&ran.faults));
    }
    gates.extend(gates::clock_gate(profile, &m.agents));
    gates.extend(ran.aborted.as_ref().map(gates::abort_gate));
    let mut warnings = gates::memory_warnings(profile, &m.agents);
    warnings.extend(assemble::schema_notes(p.check.notes, c.schema_after));
    let hello = session.links.first().map(|l| l.hello.clone()).unwrap_or_default();
    let procedures = match (&p.procedures_before, &c.procedures_after) {
        (Some(before), Some(after)) => b.store.procedure_report(before, after, &c.db_timeline),
        _ => None,
    };
    let (postgres_version, postgres_settings) = b.server;
    let report = RunReport {
        tool_version: loadgen_common::TOOL_VERSION.to_string(),
        run_id: b.run_id,
        schema: b.schema,
        started_at: ran.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        database: session.database.clone(),
        duroxide_version: hello.duroxide_version,
        duroxide_pg_version: hello.duroxide_pg_version,
        profile: profile.clone(),
        workload: WorkloadReport {
            scenario: plan.workload.scenario.clone(),
            options: b.workload.options,
            seed: b.seed,
        },
        agents: m.agents,
        passed: gates.iter().all(|g| g.passed),
        gates,
        merged: m.merged,
        scenarios: m.scenarios,
        audit: c.outcome.audit,
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
        lost_agents: c.lost,
        provider_errors: m.provider_errors,
        timeline: crate::model::Timeline {
            merged: ran.live.merged,
            agents: ran.live.agents.into_iter().map(|a| a.series).collect(),
        },
        db_timeline: c.db_timeline,
        spectrum: m.spectrum,
        postgres_settings,
        coordinator: ran.coordinator,
        stages: ran.stages,
        faults: ran.faults,
        procedures,
        provider: plan.provider,
        aborted: ran.aborted,
    };
    (report, c.logs)
}
