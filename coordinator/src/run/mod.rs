//! Runs from start to finish: resolve the plan, open the session (database
//! and agents), then for each run of the profile (one, or one per suite
//! combination): prepare a fresh schema, start every agent at one instant,
//! follow their progress, merge their histograms, check the database, and
//! drop the schema. The session is closed on every path (success, error, Ctrl-C).

use std::time::{Duration, Instant};

use loadgen_common::apportion::split_budget;
use loadgen_common::config::{Profile, SCENARIO_FANOUT, select_profile};
use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::proto;
use loadgen_common::result::{
    AgentReport, Counts, DbLoad, Environment, Histograms, LostAgent, MemorySummary, RunReport, Section,
};
use loadgen_common::schema::{new_run_id, schema_for_run};
use loadgen_common::secret;
use tokio_util::sync::CancellationToken;

use crate::agents::AgentLink;
use crate::audit::{self, Expectation};
use crate::cli::Args;
use crate::db;
use crate::error::CoordinatorError;
use crate::gates;
use crate::session::{Session, plan_agents};
use crate::stream::{Followed, LiveView, follow, start_all};

/// Delay between sending Run to every agent and the common start instant.
const START_DELAY: Duration = Duration::from_millis(500);
/// Bound on Prepare (connecting, verifying the schema, starting runtimes).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(90);
/// Slack on top of duration + drain timeout before the run is declared hung.
const RUN_SLACK: Duration = Duration::from_secs(30);

/// What the runs of one invocation produced.
#[derive(Debug)]
pub struct Outcome {
    /// The resolved profile (a suite keeps its combination list here).
    pub profile: Profile,
    /// One report per run, in order.
    pub runs: Vec<RunReport>,
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

/// Resolve the profile from --profile, --profile-file and the overrides.
pub fn resolve_profile(args: &Args) -> Result<Profile, CoordinatorError> {
    let file_text = match &args.profile_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| CoordinatorError::Usage(format!("cannot read profile file {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let profile = select_profile(args.profile.as_deref(), file_text.as_deref())?;
    Ok(profile.with_overrides(&args.overrides())?)
}

/// Refuse open-loop settings that would be silently ignored by a closed loop.
pub fn check_open_loop_flags(args: &Args, open_loop: bool) -> Result<(), CoordinatorError> {
    if !open_loop && args.arrival.is_some() {
        return Err(CoordinatorError::Usage("--arrival needs --rate (it spaces open-loop starts)".into()));
    }
    if !open_loop && args.max_in_flight.is_some() {
        return Err(CoordinatorError::Usage(
            "--max-in-flight needs --rate (a closed loop keeps --max-concurrent in flight)".into(),
        ));
    }
    Ok(())
}

/// Carry out the runs `args` describe. Returns their reports (gates included)
/// or why they could not be carried out. Cancelling `shutdown` interrupts;
/// everything brought up is taken down on every path.
pub async fn run(args: &Args, shutdown: CancellationToken) -> Result<Outcome, CoordinatorError> {
    // Everything that can be checked before touching a database or agent.
    let profile = resolve_profile(args)?;
    check_open_loop_flags(args, profile.rate.is_some())?;
    let runs = profile.expand()?;
    if args.completion_poll.is_zero() {
        return Err(CoordinatorError::Usage("--completion-poll must be positive".into()));
    }
    check_outputs(args)?;
    let addresses = plan_agents(args)?;
    // The fewest agents the plan can have (a name may resolve to several):
    // a budget smaller than that is refused before anything starts.
    let fewest = args.expect_agents.map_or(addresses.len(), |n| n as usize);
    split_budget(in_flight_budget(&profile), fewest)?;
    if let Some(rate) = profile.rate {
        rate_shares(rate, fewest)?;
    }

    let mut session = Session::default();
    let result = tokio::select! {
        r = execute(args, &runs, addresses, &mut session) => r,
        _ = shutdown.cancelled() => Err(CoordinatorError::Interrupted),
    };
    session.close().await;
    result.map(|runs| Outcome { profile, runs })
}

async fn execute(
    args: &Args,
    runs: &[Profile],
    addresses: Vec<String>,
    session: &mut Session,
) -> Result<Vec<RunReport>, CoordinatorError> {
    let first = runs.first().ok_or_else(|| CoordinatorError::Usage("the profile expands to no run".into()))?;
    session.open(args, first, addresses).await?;
    let slices = split_budget(in_flight_budget(first), session.links.len())?;
    if let Some(rate) = first.rate {
        rate_shares(rate, session.links.len())?;
    }
    let slices = slices.as_slice();
    let mut reports = Vec::with_capacity(runs.len());
    for (i, profile) in runs.iter().enumerate() {
        if runs.len() > 1 {
            eprintln!("\n=== suite run {} of {}: dispatchers {} ===", i + 1, runs.len(), profile.dispatchers());
        }
        let report = run_once(session, profile, slices, args).await?;
        session.end_run().await;
        reports.push(report);
    }
    Ok(reports)
}

/// One run on a fresh schema.
pub(crate) async fn run_once(
    session: &mut Session,
    profile: &Profile,
    slices: &[u64],
    args: &Args,
) -> Result<RunReport, CoordinatorError> {
    let run_id = new_run_id();
    let schema = schema_for_run(&run_id);
    let url = session.url.clone();
    let scrub = |e: CoordinatorError| match e {
        CoordinatorError::Database(m) => CoordinatorError::Database(secret::scrub(&m, &url)),
        other => other,
    };
    let provider = session.begin_run(&run_id, &schema).await?;
    let (commits0, rollbacks0) = db::xact_counters(provider).await.map_err(scrub)?;
    let postgres_version = db::server_version(provider).await.unwrap_or_default();
    let postgres_settings = crate::dbwatch::settings(provider).await;
    let split = slices.iter().map(u64::to_string).collect::<Vec<_>>().join("+");
    match profile.rate {
        None => eprintln!(
            "run {run_id} on schema {schema}: {} agent(s), closed loop, {} in flight ({split}), {} of load",
            session.links.len(),
            profile.max_concurrent,
            loadgen_common::config::format_duration(profile.duration)
        ),
        Some(rate) => eprintln!(
            "run {run_id} on schema {schema}: {} agent(s), open loop, {} {} arrivals, at most {} in flight ({split}), {} of load",
            session.links.len(),
            loadgen_common::config::format_rate(rate),
            profile.arrival.as_str(),
            in_flight_budget(profile),
            loadgen_common::config::format_duration(profile.duration)
        ),
    }

    let (expected_output, activities_per_instance) =
        prepare_all(&session.links, &run_id, &schema, profile, slices, args.completion_poll).await?;
    let mut expectation = Expectation {
        run_id: Some(run_id.clone()),
        output: Some(expected_output),
        activities_per_instance: Some(activities_per_instance),
        ..Default::default()
    };
    if let Some((_, p)) = session.current.as_ref() {
        audit::record(p, &expectation).await.map_err(scrub)?;
    }
    let started_at = chrono::Utc::now() + START_DELAY;
    let (controls, streams) = start_all(&session.links, &run_id, START_DELAY).await?;
    let started = Instant::now() + START_DELAY;
    let bound = profile.duration + profile.drain_timeout + START_DELAY + RUN_SLACK;
    let watch =
        session.current.as_ref().map(|(_, p)| crate::dbwatch::DbWatch::start(std::sync::Arc::clone(p), started));
    let view = LiveView { table: args.live_table(), db: watch.as_ref().map(|w| w.latest.clone()) };
    let followed = follow(&session.links, streams, &controls, args.on_agent_loss, started, bound, view).await;
    let db_timeline = match watch {
        Some(w) => w.finish().await,
        None => Vec::new(),
    };
    let (followed, live) = followed?;
    let Some((_, provider)) = session.current.as_ref() else {
        return Err(CoordinatorError::Database("schema owner missing".into()));
    };
    // Orchestrations a lost agent started are finished by the other runtimes,
    // which stay up (their leases renewed) until everything is terminal or the
    // drain timeout passes.
    let lost_agents =
        settle_orphans(provider, &run_id, &session.links, &followed, started_at, profile.drain_timeout).await?;
    let finished: Vec<usize> =
        followed.iter().enumerate().filter(|(_, f)| matches!(f, Followed::Finished { .. })).map(|(i, _)| i).collect();
    let late = session.release_agents_among(&run_id, &finished).await;
    controls.close();
    let Some((_, provider)) = session.current.as_ref() else {
        return Err(CoordinatorError::Database("schema owner missing".into()));
    };
    let (commits1, rollbacks1) = db::xact_counters(provider).await.map_err(scrub)?;

    // Per-agent sections and the exact merge.
    let mut agents = Vec::with_capacity(followed.len());
    let mut merged_counts = Counts::default();
    let mut merged_hist = Histograms::default();
    let mut elapsed_max: f64 = 0.0;
    let mut provider_errors = std::collections::BTreeMap::<String, u64>::new();
    for ((link, followed), late) in session.links.iter().zip(followed).zip(late) {
        let (counts, elapsed_s, hist, memory, lost) = match followed {
            Followed::Finished { result: r, memory } => {
                let decode = |bytes: &[u8]| {
                    LatencyHistogram::decode(bytes)
                        .map_err(|e| CoordinatorError::agent(&link.address, format!("bad histogram: {e}")))
                };
                let hist = Histograms {
                    e2e: decode(&r.e2e_latency)?,
                    observed: decode(&r.observed_latency)?,
                    start: decode(&r.start_latency)?,
                    intended: decode(&r.intended_latency)?,
                };
                let mut counts: Counts = r.totals.as_ref().map(Counts::from).unwrap_or_default();
                counts.activities += late;
                for (k, n) in &r.provider_errors {
                    *provider_errors.entry(k.clone()).or_default() += n;
                }
                (counts, r.elapsed_ms as f64 / 1000.0, hist, memory, false)
            }
            Followed::Lost { at, mut counts, histograms, memory, .. } => {
                // Outcomes from the database (it cannot report them any more):
                // everything it started, and how it ended after the others
                // finished it. Latencies and activities are what it reported.
                if let Some(l) = lost_agents.iter().find(|l| l.index == link.index) {
                    counts.launched = counts.launched.max(l.instances_in_db);
                    counts.completed = l.completed_in_db;
                    counts.unfinished = counts.launched.saturating_sub(counts.completed + counts.failed());
                }
                (counts, at.as_secs_f64(), *histograms, memory, true)
            }
        };
        elapsed_max = elapsed_max.max(elapsed_s);
        merged_counts.add(&counts);
        merged_hist.merge(&hist).map_err(|e| CoordinatorError::agent(&link.address, e))?;
        agents.push(AgentReport {
            index: link.index,
            address: link.address.clone(),
            hostname: link.hello.hostname.clone(),
            concurrency: slices.get(link.index as usize).copied().unwrap_or(0),
            pool_max: link.hello.pool_max,
            section: Section::new(counts, elapsed_s, &hist),
            lost,
            memory: MemorySummary::from_samples(memory),
        });
    }
    let merged = Section::new(merged_counts, elapsed_max, &merged_hist);
    let spectrum = spectrum(merged_hist.headline());
    let series = live.timeline().map_err(|e| CoordinatorError::Local(format!("time series: {e}")))?;
    let timeline = series.timeline;
    // Orchestrations completed by each database sample (for commits per orchestration over time).
    let mut db_timeline = db_timeline;
    for s in &mut db_timeline {
        s.completed = timeline.merged.iter().filter(|p| p.t_s <= s.t_s + 0.5).map(|p| p.completed).sum();
    }
    if let Some(dir) = &args.hlog_dir {
        // A failure here loses only the logs, not the run's result.
        let start = std::time::SystemTime::from(started_at);
        match crate::hlog::write_run_logs(dir, &run_id, start, &series.merged, &series.agents) {
            Ok(written) => eprintln!(
                "interval logs: {}",
                written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
            Err(e) => eprintln!("warning: cannot write interval logs to {}: {e}", dir.display()),
        }
    }
    expectation.launched = merged.counts.launched;
    expectation.completed = Some(merged.counts.completed);
    // A lost agent's last executions were never reported: the count is then
    // a lower bound the audit cannot hold the history to.
    expectation.activities_executed = if lost_agents.is_empty() { merged.counts.activities } else { 0 };
    let Some((_, provider)) = session.current.as_ref() else {
        return Err(CoordinatorError::Database("schema owner missing".into()));
    };
    audit::record(provider, &expectation).await.map_err(scrub)?;
    let audit = audit::audit(provider, &expectation).await.map_err(scrub)?;
    let commits = commits1.saturating_sub(commits0);
    let c = &merged.counts;
    let generator_calls = c.launched + c.start_errors + c.status_queries + c.failed();
    let pct = |n: u64| if commits > 0 { n as f64 * 100.0 / commits as f64 } else { 0.0 };
    let db_load = DbLoad {
        commits,
        rollbacks: rollbacks1.saturating_sub(rollbacks0),
        commits_per_orchestration: if c.completed > 0 { commits as f64 / c.completed as f64 } else { 0.0 },
        generator_calls,
        completion_queries: c.status_queries,
        completion_share_pct: pct(c.status_queries),
        generator_share_pct: pct(generator_calls),
    };
    let mut gates = gates::evaluate(profile, &merged, &audit);
    if !lost_agents.is_empty() {
        gates.push(gates::agents_gate(session.links.len(), &lost_agents));
    }
    let warnings = gates::memory_warnings(profile, &agents);
    let hello = session.links.first().map(|l| l.hello.clone()).unwrap_or_default();
    Ok(RunReport {
        tool_version: loadgen_common::TOOL_VERSION.to_string(),
        run_id: run_id.clone(),
        schema,
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        database: session.database.clone(),
        duroxide_version: hello.duroxide_version,
        duroxide_pg_version: hello.duroxide_pg_version,
        profile: profile.clone(),
        agents,
        passed: gates.iter().all(|g| g.passed),
        gates,
        merged,
        audit,
        db_load,
        warnings,
        comparison: None,
        environment: Environment {
            db_host: session.db_host.clone(),
            cloud: args.track_cloud,
            commit: None,
            branch: None,
            machine: loadgen_common::process::hostname(),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            postgres_version,
        },
        lost_agents,
        provider_errors,
        timeline,
        db_timeline,
        spectrum,
        postgres_settings,
    })
}

/// Refuse, before anything starts, result files that cannot be written.
pub fn check_outputs(args: &Args) -> Result<(), CoordinatorError> {
    let outputs = args.json.iter().filter(|p| p.as_os_str() != "-").map(|p| ("--json", p));
    let files = outputs.chain(args.report.iter().map(|p| ("--report", p)));
    // --hlog-dir names the directory itself (a file in it is probed).
    let probe_in = args.hlog_dir.as_ref().map(|d| d.join("run.hlog"));
    for (flag, path) in files.chain(probe_in.iter().map(|p| ("--hlog-dir", p))) {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let shown = if flag == "--hlog-dir" { dir.display() } else { path.display() };
        if !dir.is_dir() {
            return Err(CoordinatorError::Usage(format!(
                "{flag} {}: directory {} does not exist",
                shown,
                dir.display()
            )));
        }
        // Find out now, not after the run, that the result cannot be written.
        let probe = dir.join(format!(".loadgen-write-check-{}", std::process::id()));
        std::fs::File::create(&probe).map_err(|e| {
            CoordinatorError::Usage(format!("{flag} {}: cannot write in {}: {e}", shown, dir.display()))
        })?;
        let _ = std::fs::remove_file(&probe);
    }
    Ok(())
}

/// The headline latency at percentiles from 0 to 99.9999 (and the maximum),
/// for the percentile-spectrum chart.
pub fn spectrum(h: &LatencyHistogram) -> Vec<loadgen_common::result::SpectrumPoint> {
    if h.count() == 0 {
        return Vec::new();
    }
    let mut ps: Vec<f64> = (0..10).map(|i| f64::from(i) * 10.0).collect();
    ps.extend([95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9999]);
    let mut out: Vec<_> = ps
        .into_iter()
        .map(|p| loadgen_common::result::SpectrumPoint {
            percentile: p,
            latency_ms: h.quantile_us(p / 100.0) as f64 / 1000.0,
        })
        .collect();
    out.push(loadgen_common::result::SpectrumPoint { percentile: 100.0, latency_ms: h.max_us() as f64 / 1000.0 });
    out
}

/// The in-flight budget split over the agents: what the closed loop keeps in
/// flight, or the open loop's cap.
pub fn in_flight_budget(profile: &Profile) -> u64 {
    profile.open_loop_cap().unwrap_or(profile.max_concurrent)
}

/// Each agent's share of an open-loop rate, split like the budget (largest
/// remainder, in thousandths of a start per second).
pub fn rate_shares(rate: f64, agents: usize) -> Result<Vec<f64>, CoordinatorError> {
    let milli = (rate * 1000.0).round() as u64;
    if (milli as usize) < agents {
        return Err(CoordinatorError::Usage(format!(
            "--rate {rate}/s is too low for {agents} agents (each needs at least 0.001/s)"
        )));
    }
    Ok(split_budget(milli, agents)?.into_iter().map(|m| m as f64 / 1000.0).collect())
}

/// After a loss, wait (bounded) until the lost agents' instances are terminal,
/// then describe what became of them.
async fn settle_orphans(
    provider: &duroxide_pg::PostgresProvider,
    run_id: &str,
    links: &[AgentLink],
    followed: &[Followed],
    started_at: chrono::DateTime<chrono::Utc>,
    bound: Duration,
) -> Result<Vec<LostAgent>, CoordinatorError> {
    let lost: Vec<(usize, &Followed)> =
        followed.iter().enumerate().filter(|(_, f)| matches!(f, Followed::Lost { .. })).collect();
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + bound;
    loop {
        let mut open = 0;
        for (i, _) in &lost {
            open += db::agent_instances(provider, run_id, *i as u32, started_at).await?.3;
        }
        if open == 0 || Instant::now() >= deadline {
            break;
        }
        eprintln!("waiting for {open} orchestration(s) of lost agents to be finished by the other runtimes...");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut out = Vec::with_capacity(lost.len());
    for (i, f) in lost {
        let Followed::Lost { at, reason, counts, in_flight, .. } = f else { continue };
        let lost_at = started_at + chrono::TimeDelta::from_std(*at).unwrap_or_default();
        let (total, completed, failed, running, after) =
            db::agent_instances(provider, run_id, i as u32, lost_at).await?;
        out.push(LostAgent {
            index: i as u32,
            address: links.get(i).map(|l| l.address.clone()).unwrap_or_default(),
            at_s: at.as_secs_f64(),
            reason: reason.clone(),
            last_reported: counts.clone(),
            in_flight_at_loss: *in_flight,
            instances_in_db: total,
            completed_in_db: completed,
            failed_in_db: failed,
            still_running: running,
            completed_by_others: after,
        });
    }
    Ok(out)
}

/// Prepare every agent concurrently; the first failure fails the run.
async fn prepare_all(
    links: &[AgentLink],
    run_id: &str,
    schema: &str,
    profile: &Profile,
    slices: &[u64],
    completion_poll: Duration,
) -> Result<(String, u64), CoordinatorError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let rates = match profile.rate {
        Some(rate) => rate_shares(rate, links.len())?,
        None => vec![0.0; links.len()],
    };
    let run_seed = u64::from_str_radix(run_id.get(..8).unwrap_or("0"), 16).unwrap_or(0);
    let mut set = tokio::task::JoinSet::new();
    for l in links {
        let i = l.index as usize;
        let rate = rates.get(i).copied().unwrap_or(0.0);
        // Agent i of n starts i/n of its own gap late: with constant
        // arrivals the agents' starts interleave instead of coinciding.
        let offset_us = if rate > 0.0 { (i as f64 / links.len() as f64 / rate * 1e6) as u64 } else { 0 };
        let req = proto::PrepareRequest {
            run_id: run_id.to_string(),
            schema: schema.to_string(),
            agent_index: l.index,
            scenario: Some(proto::Scenario {
                name: SCENARIO_FANOUT.into(),
                tasks_per_instance: profile.tasks_per_instance,
                activity_delay_ms: ms(profile.activity_delay),
            }),
            runtime: Some(proto::RuntimeSettings {
                runtimes: profile.runtimes_per_agent,
                orchestration_concurrency: profile.orch_concurrency,
                worker_concurrency: profile.worker_concurrency,
                poll_interval_ms: ms(profile.poll_interval),
                orchestrator_lock_timeout_ms: profile.orchestrator_lock_timeout.map_or(0, ms),
                worker_lock_timeout_ms: profile.worker_lock_timeout.map_or(0, ms),
            }),
            concurrency: u32::try_from(slices.get(l.index as usize).copied().unwrap_or(0)).unwrap_or(u32::MAX),
            duration_ms: ms(profile.duration),
            drain_timeout_ms: ms(profile.drain_timeout),
            completion_poll_ms: ms(completion_poll).max(1),
            db_latency_us: u64::try_from(profile.db_latency.as_micros()).unwrap_or(u64::MAX),
            rate_per_sec: rate,
            arrival: profile.arrival.as_str().to_string(),
            schedule_offset_us: offset_us,
            seed: run_seed ^ (u64::from(l.index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        let mut client = l.client.clone();
        let address = l.address.clone();
        set.spawn(async move {
            let mut req = tonic::Request::new(req);
            req.set_timeout(PREPARE_TIMEOUT);
            client
                .prepare(req)
                .await
                .map(|r| (address.clone(), r.into_inner()))
                .map_err(|s| CoordinatorError::agent(&address, format!("prepare failed: {}", s.message())))
        });
    }
    // Every agent must expect the same of the scenario (same registrations).
    let mut expected: Option<(String, u64)> = None;
    while let Some(joined) = set.join_next().await {
        let (address, reply) = joined.map_err(|e| CoordinatorError::Local(e.to_string()))??;
        let mine = (reply.expected_output, reply.activities_per_instance);
        match &expected {
            None => expected = Some(mine),
            Some(first) if *first != mine => {
                return Err(CoordinatorError::agent(
                    &address,
                    format!(
                        "expects {mine:?} of the scenario where another agent expects {first:?}: mixed agent builds"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    expected.ok_or_else(|| CoordinatorError::Usage("no agents to prepare".into()))
}
