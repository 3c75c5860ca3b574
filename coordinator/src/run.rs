//! One run from start to finish: resolve the plan, bring up the database and
//! agents, prepare the schema, start every agent at one instant, follow their
//! progress, merge their histograms, check the database, and tear everything
//! down again on every path (success, error, Ctrl-C).

use std::time::{Duration, Instant};

use duroxide_pg::PostgresProvider;
use loadgen_common::apportion::split_budget;
use loadgen_common::config::{Profile, SCENARIO_FANOUT, find_profile};
use loadgen_common::embedded_pg::EmbeddedPostgres;
use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::proto::{self, run_event};
use loadgen_common::result::{AgentReport, Counts, DbLoad, Histograms, RunReport, Section};
use loadgen_common::schema::{new_run_id, schema_for_run};
use loadgen_common::secret;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agents::{AgentLink, connect_all, parse_agent_list};
use crate::cli::Args;
use crate::db;
use crate::error::CoordinatorError;
use crate::gates;
use crate::live::Live;
use crate::local::{LocalAgents, find_agent_binary};

/// Delay between sending Run to every agent and the common start instant.
const START_DELAY: Duration = Duration::from_millis(500);
/// Bound on Prepare (connecting, verifying the schema, starting runtimes).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on Release (stopping the driver and shutting runtimes down).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(45);
/// Slack on top of duration + drain timeout before the run is declared hung.
const RUN_SLACK: Duration = Duration::from_secs(30);

/// Everything a run brings up, so that teardown can take it down on any path.
#[derive(Default)]
struct Resources {
    embedded: Option<EmbeddedPostgres>,
    local: Option<LocalAgents>,
    links: Vec<AgentLink>,
    run_id: String,
    schema_owner: Option<PostgresProvider>,
}

impl Resources {
    async fn release_agents(&mut self) -> Vec<u64> {
        let mut set = tokio::task::JoinSet::new();
        for l in &self.links {
            let mut client = l.client.clone();
            let (index, address, run_id) = (l.index, l.address.clone(), self.run_id.clone());
            set.spawn(async move {
                let mut req = tonic::Request::new(proto::ReleaseRequest { run_id });
                req.set_timeout(RELEASE_TIMEOUT);
                match client.release(req).await {
                    Ok(r) => (index, r.into_inner().late_activities),
                    Err(s) => {
                        tracing::warn!(agent = %address, error = %s.message(), "release failed");
                        (index, 0)
                    }
                }
            });
        }
        let mut late = vec![0; self.links.len()];
        while let Some(Ok((i, n))) = set.join_next().await {
            if let Some(slot) = late.get_mut(i as usize) {
                *slot = n;
            }
        }
        late
    }

    async fn teardown(&mut self, keep_schema: bool) {
        if !self.links.is_empty() {
            self.release_agents().await;
            self.links.clear();
        }
        if let Some(provider) = self.schema_owner.take() {
            if keep_schema {
                if self.embedded.is_some() {
                    eprintln!(
                        "note: --keep-schema has no lasting effect on the throwaway database, which is removed now"
                    );
                } else {
                    eprintln!("schema {} kept", provider.schema_name());
                }
            } else if let Err(e) = db::drop_schema(&provider).await {
                eprintln!("warning: {e}; drop it by hand: DROP SCHEMA {} CASCADE", provider.schema_name());
            }
        }
        if let Some(mut local) = self.local.take() {
            local.stop().await;
        }
        if let Some(mut pg) = self.embedded.take() {
            tokio::task::spawn_blocking(move || pg.stop()).await.ok();
        }
    }
}

/// Carry out one run as `args` describe. Returns the report (gates included)
/// or why the run could not be carried out. Cancelling `shutdown` interrupts
/// it; resources are released on every path.
pub async fn run(args: &Args, shutdown: CancellationToken) -> Result<RunReport, CoordinatorError> {
    // Everything that can be checked before touching a database or agent.
    let profile = find_profile(&args.profile)?.with_overrides(&args.overrides())?;
    if args.completion_poll.is_zero() {
        return Err(CoordinatorError::Usage("--completion-poll must be positive".into()));
    }
    let addresses = match args.local {
        Some(0) => return Err(CoordinatorError::Usage("--local needs at least 1 agent".into())),
        Some(n) => {
            find_agent_binary(args.agent_bin.as_deref())?;
            vec![String::new(); n as usize]
        }
        None => {
            if args.database_url.is_none() {
                return Err(CoordinatorError::Usage(
                    "--agents needs --database-url (or DATABASE_URL): the coordinator prepares the schema the remote agents use".into(),
                ));
            }
            parse_agent_list(&args.agents)?
        }
    };
    let slices = split_budget(profile.max_concurrent, addresses.len())?;

    let mut res = Resources { run_id: new_run_id(), ..Default::default() };
    let outcome = tokio::select! {
        r = execute(args, &profile, &slices, addresses, &mut res) => r,
        _ = shutdown.cancelled() => Err(CoordinatorError::Interrupted),
    };
    res.teardown(args.keep_schema).await;
    outcome
}

async fn execute(
    args: &Args,
    profile: &Profile,
    slices: &[u64],
    addresses: Vec<String>,
    res: &mut Resources,
) -> Result<RunReport, CoordinatorError> {
    let (url, database) = match &args.database_url {
        Some(u) => (u.clone(), secret::mask_url(u)),
        None => {
            let pg = EmbeddedPostgres::start().await?;
            let url = pg.url().to_string();
            let label = format!("throwaway Postgres on 127.0.0.1:{}", pg.port());
            eprintln!("no --database-url given: started a {label} (removed at exit)");
            res.embedded = Some(pg);
            (url, label)
        }
    };
    let addresses = match args.local {
        Some(n) => {
            let bin = find_agent_binary(args.agent_bin.as_deref())?;
            let local = LocalAgents::spawn(n, &bin, &url, &args.log).await?;
            let addrs = local.addresses();
            res.local = Some(local);
            addrs
        }
        None => addresses,
    };
    res.links = connect_all(&addresses).await?;
    let schema = schema_for_run(&res.run_id);
    let provider = db::create_schema(&url, &schema).await?;
    let scrub = |e: CoordinatorError| match e {
        CoordinatorError::Database(m) => CoordinatorError::Database(secret::scrub(&m, &url)),
        other => other,
    };
    let (commits0, rollbacks0) = db::xact_counters(&provider).await.map_err(scrub)?;
    res.schema_owner = Some(provider);
    eprintln!(
        "run {} on schema {schema}: {} agent(s), {} in flight ({}), {} of load",
        res.run_id,
        res.links.len(),
        profile.max_concurrent,
        slices.iter().map(u64::to_string).collect::<Vec<_>>().join("+"),
        loadgen_common::config::format_duration(profile.duration)
    );

    prepare_all(&res.links, &res.run_id, &schema, profile, slices, args.completion_poll).await?;
    let started_at = chrono::Utc::now() + START_DELAY;
    let streams = start_all(&res.links, &res.run_id).await?;
    let started = Instant::now() + START_DELAY;
    let results =
        follow(&res.links, streams, started, profile.duration + profile.drain_timeout + START_DELAY + RUN_SLACK)
            .await?;
    let late = res.release_agents().await;

    let Some(provider) = res.schema_owner.as_ref() else {
        return Err(CoordinatorError::Database("schema owner missing".into()));
    };
    let (commits1, rollbacks1) = db::xact_counters(provider).await.map_err(scrub)?;
    let db_check = db::check_run(provider, &res.run_id).await.map_err(scrub)?;

    // Per-agent sections and the exact merge.
    let mut agents = Vec::with_capacity(results.len());
    let mut merged_counts = Counts::default();
    let mut merged_hist = Histograms::default();
    let mut elapsed_max: f64 = 0.0;
    for ((link, (result, _)), late) in res.links.iter().zip(&results).zip(late) {
        let decode = |bytes: &[u8]| {
            LatencyHistogram::decode(bytes)
                .map_err(|e| CoordinatorError::agent(&link.address, format!("bad histogram: {e}")))
        };
        let hist = Histograms {
            e2e: decode(&result.e2e_latency)?,
            observed: decode(&result.observed_latency)?,
            start: decode(&result.start_latency)?,
        };
        let mut counts: Counts = result.totals.as_ref().map(Counts::from).unwrap_or_default();
        counts.activities += late;
        let elapsed_s = result.elapsed_ms as f64 / 1000.0;
        elapsed_max = elapsed_max.max(elapsed_s);
        merged_counts.add(&counts);
        merged_hist.merge(&hist).map_err(|e| CoordinatorError::agent(&link.address, e))?;
        agents.push(AgentReport {
            index: link.index,
            address: link.address.clone(),
            hostname: link.hello.hostname.clone(),
            concurrency: slices.get(link.index as usize).copied().unwrap_or(0),
            section: Section::new(counts, elapsed_s, &hist),
        });
    }
    let merged = Section::new(merged_counts, elapsed_max, &merged_hist);
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
    let gates = gates::evaluate(profile, &merged, &db_check);
    let first = res.links.first().map(|l| l.hello.clone()).unwrap_or_default();
    Ok(RunReport {
        tool_version: loadgen_common::TOOL_VERSION.to_string(),
        run_id: res.run_id.clone(),
        schema,
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        database,
        duroxide_version: first.duroxide_version,
        duroxide_pg_version: first.duroxide_pg_version,
        profile: profile.clone(),
        agents,
        passed: gates.iter().all(|g| g.passed),
        gates,
        merged,
        db_check,
        db_load,
    })
}

/// Prepare every agent concurrently; the first failure fails the run.
async fn prepare_all(
    links: &[AgentLink],
    run_id: &str,
    schema: &str,
    profile: &Profile,
    slices: &[u64],
    completion_poll: Duration,
) -> Result<(), CoordinatorError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut set = tokio::task::JoinSet::new();
    for l in links {
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
            }),
            concurrency: u32::try_from(slices.get(l.index as usize).copied().unwrap_or(0)).unwrap_or(u32::MAX),
            duration_ms: ms(profile.duration),
            drain_timeout_ms: ms(profile.drain_timeout),
            completion_poll_ms: ms(completion_poll).max(1),
        };
        let mut client = l.client.clone();
        let address = l.address.clone();
        set.spawn(async move {
            let mut req = tonic::Request::new(req);
            req.set_timeout(PREPARE_TIMEOUT);
            client
                .prepare(req)
                .await
                .map(|_| ())
                .map_err(|s| CoordinatorError::agent(&address, format!("prepare failed: {}", s.message())))
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.map_err(|e| CoordinatorError::Local(e.to_string()))??;
    }
    Ok(())
}

type EventStream = tonic::Streaming<proto::RunEvent>;

/// Send Run to every agent at once; they all start after the same delay.
async fn start_all(links: &[AgentLink], run_id: &str) -> Result<Vec<EventStream>, CoordinatorError> {
    let mut set = tokio::task::JoinSet::new();
    for (i, l) in links.iter().enumerate() {
        let mut client = l.client.clone();
        let req = proto::RunRequest { run_id: run_id.to_string(), start_delay_ms: START_DELAY.as_millis() as u64 };
        let address = l.address.clone();
        set.spawn(async move {
            let r = client
                .run(req)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| CoordinatorError::agent(&address, format!("run refused: {}", s.message())));
            (i, r)
        });
    }
    let mut streams: Vec<Option<EventStream>> = (0..links.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| CoordinatorError::Local(e.to_string()))?;
        streams[i] = Some(r?);
    }
    Ok(streams.into_iter().flatten().collect())
}

enum StreamEvent {
    Event(proto::RunEvent),
    Failed(tonic::Status),
    Ended,
}

/// Follow every agent's stream until each has sent its result; print a live
/// line every second. Returns each agent's result with its stream counts.
async fn follow(
    links: &[AgentLink],
    streams: Vec<EventStream>,
    started: Instant,
    bound: Duration,
) -> Result<Vec<(proto::AgentResult, Counts)>, CoordinatorError> {
    let n = links.len();
    let (tx, mut rx) = mpsc::channel::<(usize, StreamEvent)>(256);
    for (i, mut stream) in streams.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let ev = match stream.message().await {
                    Ok(Some(ev)) => StreamEvent::Event(ev),
                    Ok(None) => StreamEvent::Ended,
                    Err(s) => StreamEvent::Failed(s),
                };
                let last = !matches!(ev, StreamEvent::Event(_));
                if tx.send((i, ev)).await.is_err() || last {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut live = Live::new(n, started);
    let mut results: Vec<Option<proto::AgentResult>> = vec![None; n];
    let mut ended = 0;
    let deadline = tokio::time::Instant::from_std(started + bound);
    // Tick a little after the agents' own second boundaries, so each line
    // includes the interval that just ended.
    let first = tokio::time::Instant::from_std(started) + Duration::from_millis(1300);
    let mut ticker = tokio::time::interval_at(first, Duration::from_secs(1));
    while ended < n {
        tokio::select! {
            msg = rx.recv() => {
                let Some((i, ev)) = msg else { break };
                let address = links.get(i).map(|l| l.address.as_str()).unwrap_or("?");
                match ev {
                    StreamEvent::Event(proto::RunEvent { event: Some(run_event::Event::Progress(p)) }) => {
                        live.progress(i, &p).map_err(|e| CoordinatorError::agent(address, format!("bad progress: {e}")))?;
                    }
                    StreamEvent::Event(proto::RunEvent { event: Some(run_event::Event::Result(r)) }) => results[i] = Some(r),
                    StreamEvent::Event(_) => {}
                    StreamEvent::Failed(s) => {
                        live.lost(i);
                        return Err(CoordinatorError::agent(address, format!("lost during the run: {}", s.message())));
                    }
                    StreamEvent::Ended => {
                        ended += 1;
                        if results[i].is_none() {
                            live.lost(i);
                            return Err(CoordinatorError::agent(address, "ended its stream without a result"));
                        }
                    }
                }
            }
            _ = ticker.tick() => eprintln!("{}", live.line()),
            _ = tokio::time::sleep_until(deadline) => return Err(CoordinatorError::Timeout(bound)),
        }
    }
    eprintln!("{}", live.line());
    let mut out = Vec::with_capacity(n);
    for (i, r) in results.into_iter().enumerate() {
        let address = links.get(i).map(|l| l.address.as_str()).unwrap_or("?");
        let r = r.ok_or_else(|| CoordinatorError::agent(address, "no result"))?;
        let streamed = live.streamed_counts(i).cloned().unwrap_or_default();
        let totals: Counts = r.totals.as_ref().map(Counts::from).unwrap_or_default();
        let samples = LatencyHistogram::decode(&r.e2e_latency).map(|h| h.count()).unwrap_or(0);
        if streamed != totals || live.streamed_samples(i) != samples {
            tracing::warn!(agent = %address, ?streamed, ?totals, "progress stream and final result disagree");
        }
        out.push((r, streamed));
    }
    Ok(out)
}
