//! The agent's one run at a time: prepare (verify the schema, build the
//! scenario, start the runtimes), run (hand the driver its plan), release
//! (stop and tear down). Domain types in, domain types out; the gRPC layer
//! ([`crate::service`]) converts.
//!
//! State lives behind a std `Mutex`, never held across an `.await`: every
//! transition is a short check-and-set, and the slow work (connecting,
//! starting runtimes, driving load) happens outside the lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use loadgen_common::dburl::{DbUrl, Endpoint};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AgentConfig;
use crate::driver::{self, Deps, OwnTracking, Sink};
use crate::error::AgentError;
use crate::lease::{LEASE, Lease};
use crate::plan::{RunSpec, Store};
use crate::relay::Relay;
use crate::runtimes::{Backend, Runtimes};
use crate::scenario::{self, ActivityCounters, Context};
use crate::tracker::Tracker;

/// Where the coordinator's completions for this agent's instances are handed
/// to the driver.
pub type FeedSender = tokio::sync::mpsc::UnboundedSender<Vec<crate::tracker::Finished>>;

/// What a relay fault does to the database traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayFault {
    /// This much more delay each way.
    Latency(Duration),
    /// Nothing passes.
    Partition,
}

/// duroxide's SQLite provider for `store` (in memory, or on its file).
async fn open_sqlite(store: &Store) -> Result<duroxide::providers::sqlite::SqliteProvider, AgentError> {
    use duroxide::providers::sqlite::SqliteProvider;
    let opened = match store {
        Store::SqliteFile(path) => SqliteProvider::new(&format!("sqlite:{}?mode=rwc", path.display()), None).await,
        _ => SqliteProvider::new_in_memory().await,
    };
    opened.map_err(|e| AgentError::Database(format!("opening SQLite: {e}")))
}

/// A prepared run whose Run never comes is released after this long.
pub const PREPARED_LEASE: Duration = Duration::from_secs(60);
/// Bound on waiting for the driver when a run is released.
const DRIVER_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a release hands back: the activities executed after the finish was
/// sent, their lines of the ledger, and how many lines could not be kept.
#[derive(Debug, Default)]
pub struct Released {
    pub late_activities: u64,
    pub runs: Vec<loadgen_common::ledger::ActivityRun>,
    pub dropped: u64,
}

/// Where the agent is in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Preparing,
    Prepared,
    Running,
    Finished,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Preparing => "preparing",
            Phase::Prepared => "prepared",
            Phase::Running => "running",
            Phase::Finished => "finished",
        }
    }
}

struct Slot {
    run_id: String,
    phase: Phase,
    since: Instant,
    runtimes: Option<Runtimes>,
    deps: Option<Deps>,
    plan: Option<RunSpec>,
    cancel: CancellationToken,
    driver: Option<JoinHandle<driver::RunOutcome>>,
    counters: Arc<ActivityCounters>,
    /// Delay relay between the providers and Postgres, when asked for.
    relay: Option<Relay>,
    /// The coordinator's heartbeat lease, once running.
    lease: Option<Lease>,
    /// The process its runtimes were handed to (a rolling upgrade).
    successor: Option<crate::upgrade::Successor>,
}

/// The agent: configuration plus the run it currently serves.
#[derive(Clone)]
pub struct Agent {
    config: Arc<AgentConfig>,
    slot: Arc<Mutex<Option<Slot>>>,
    /// Cancelled after the first run is released (`--run-once`).
    exit_after_run: Option<CancellationToken>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

use crate::exposition::View;

impl Agent {
    /// What the agent is doing, for its metrics endpoint.
    pub fn view(&self) -> View {
        let slot = self.lock();
        let Some(s) = slot.as_ref() else { return View { phase: Phase::Idle.name(), ..Default::default() } };
        let share = s.plan.as_ref().map_or(0.0, |p| {
            let at = if s.phase == Phase::Running { s.since.elapsed() } else { Duration::ZERO };
            if p.load.is_open() {
                p.load.plan.value_at(at)
            } else {
                p.load.target_at(at, p.agent_index, p.agent_count) as f64
            }
        });
        View {
            run_id: s.run_id.clone(),
            phase: s.phase.name(),
            index: s.plan.as_ref().map(|p| p.agent_index),
            share,
            activities: s.counters.total(),
            runtimes: s.runtimes.as_ref().map(|r| r.fleet().snapshots()).unwrap_or_default(),
        }
    }

    /// A new idle agent.
    pub fn new(config: AgentConfig) -> Self {
        Agent { config: Arc::new(config), slot: Arc::new(Mutex::new(None)), exit_after_run: None }
    }

    /// Cancel `token` once a run has been released (for `--run-once`).
    pub fn exit_after_run(mut self, token: CancellationToken) -> Self {
        self.exit_after_run = Some(token);
        self
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Option<Slot>> {
        // A panic while holding this lock cannot leave a half-made transition
        // (each is a single assignment), so a poisoned lock is still usable.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().as_ref().map_or(Phase::Idle, |s| s.phase)
    }

    /// Verify the schema, build the scenario and start the runtimes for a
    /// run; returns the workload as this agent understood it.
    pub async fn prepare(&self, spec: RunSpec) -> Result<String, AgentError> {
        let run_id = spec.run_id.clone();
        let counters = Arc::new(ActivityCounters::new());
        {
            let mut slot = self.lock();
            if let Some(s) = slot.as_ref() {
                return Err(AgentError::Busy { run_id: s.run_id.clone(), phase: s.phase.name() });
            }
            *slot = Some(Slot {
                run_id: run_id.clone(),
                phase: Phase::Preparing,
                since: Instant::now(),
                runtimes: None,
                deps: None,
                plan: None,
                cancel: CancellationToken::new(),
                driver: None,
                counters: Arc::clone(&counters),
                relay: None,
                lease: None,
                successor: None,
            });
        }
        match self.build(&spec, counters).await {
            Ok((runtimes, deps, relay, described)) => {
                // Hand the runtimes to the slot unless it was released meanwhile.
                let leftover = {
                    let mut slot = self.lock();
                    match slot.as_mut() {
                        Some(s) if s.run_id == run_id && s.phase == Phase::Preparing => {
                            s.relay = relay;
                            s.runtimes = Some(runtimes);
                            s.deps = Some(deps);
                            s.plan = Some(spec.clone());
                            s.phase = Phase::Prepared;
                            s.since = Instant::now();
                            None
                        }
                        _ => Some(runtimes),
                    }
                };
                if let Some(runtimes) = leftover {
                    runtimes.shutdown().await;
                    return Err(AgentError::UnknownRun { run_id, expected: "being prepared" });
                }
                self.spawn_lease_watch(run_id.clone());
                tracing::info!(run = %run_id, schema = %spec.schema, agent = spec.agent_index, workload = %described, "prepared");
                Ok(described)
            }
            Err(e) => {
                let mut slot = self.lock();
                if slot.as_ref().is_some_and(|s| s.run_id == run_id) {
                    *slot = None;
                }
                tracing::warn!(run = %run_id, error = %e, "prepare failed");
                Err(e)
            }
        }
    }

    async fn build(
        &self,
        spec: &RunSpec,
        counters: Arc<ActivityCounters>,
    ) -> Result<(Runtimes, Deps, Option<Relay>, String), AgentError> {
        let w = &spec.workload;
        let ctx =
            Context { run_id: spec.run_id.clone(), seed: w.seed, agent: spec.agent_index, agents: spec.agent_count };
        let built = scenario::build(&w.scenario, &w.options, &ctx)?;
        let described = built.describe(w.seed);
        let node = format!("{}-a{}", spec.run_id, spec.agent_index);
        let mut sqlite_store = None;
        let (backend, relay) = match &spec.store {
            Store::Postgres => {
                let (url, relay) = self.database_route(spec.db_latency, spec.relay).await?;
                (Backend::Postgres { url, schema: spec.schema.clone(), migrate: spec.migrate }, relay)
            }
            sqlite => {
                if spec.tracking == crate::plan::Tracking::Cluster {
                    return Err(AgentError::InvalidRequest {
                        field: "tracking",
                        detail: "SQLite is process-local: the coordinator cannot track its completions".into(),
                    });
                }
                let store = Arc::new(open_sqlite(sqlite).await?);
                sqlite_store = Some(Arc::clone(&store));
                (Backend::Sqlite(store), None)
            }
        };
        let runtimes = Runtimes::start(backend, &node, &spec.runtime, Arc::clone(&counters)).await?;
        let tracking = match (&runtimes.client_provider, sqlite_store) {
            (Some(p), _) => OwnTracking::Query(Tracker::new(&spec.schema), Arc::clone(p)),
            (None, Some(store)) => OwnTracking::Sqlite(store),
            (None, None) => OwnTracking::Client(runtimes.client.clone()),
        };
        let deps = Deps { client: runtimes.client.clone(), tracking, workload: built.scenario, counters };
        Ok((runtimes, deps, relay, described))
    }

    /// The URL the providers use: the agent's own, or, with an artificial
    /// delay, the same URL pointed at a delay relay on loopback.
    async fn database_route(&self, delay: Duration, relay: bool) -> Result<(String, Option<Relay>), AgentError> {
        let url = &self.config.database_url;
        if delay.is_zero() && !relay {
            return Ok((url.clone(), None));
        }
        let invalid = |detail: String| AgentError::InvalidRequest { field: "db_latency", detail };
        let parsed = DbUrl::parse(url).map_err(|e| invalid(e.to_string()))?;
        let Endpoint::Tcp { host, port } = &parsed.endpoint else {
            return Err(invalid("an artificial delay needs a TCP database URL, not a unix socket".into()));
        };
        let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let relay = Relay::start(target, delay)
            .await
            .map_err(|e| AgentError::Database(format!("cannot start the latency relay: {e}")))?;
        let routed = parsed.with_tcp_endpoint("127.0.0.1", relay.local_addr().port());
        Ok((routed, Some(relay)))
    }

    /// Start the prepared run after `start_delay`, handing intervals and the
    /// finish to `sink`; returns the lease the caller renews with the
    /// coordinator's heartbeats, and where the coordinator's completions go
    /// (cluster tracking).
    pub fn run<S: Sink + 'static>(
        &self,
        run_id: &str,
        start_delay: Duration,
        client_tracking: bool,
        sink: S,
    ) -> Result<(Lease, FeedSender), AgentError> {
        let mut slot = self.lock();
        let Some(s) = slot.as_mut().filter(|s| s.run_id == run_id && s.phase == Phase::Prepared) else {
            return Err(match slot.as_ref() {
                Some(s) if s.run_id != run_id => AgentError::Busy { run_id: s.run_id.clone(), phase: s.phase.name() },
                _ => AgentError::UnknownRun { run_id: run_id.to_string(), expected: "prepared" },
            });
        };
        let (Some(mut plan), Some(mut deps)) = (s.plan.clone(), s.deps.clone()) else {
            return Err(AgentError::UnknownRun { run_id: run_id.to_string(), expected: "prepared" });
        };
        if client_tracking {
            // The coordinator cannot read this build's tables: learn
            // completions here, through the client API.
            plan.tracking = crate::plan::Tracking::Agent;
            deps.tracking = OwnTracking::Client(deps.client.clone());
        }
        s.phase = Phase::Running;
        s.since = Instant::now();
        let cancel = s.cancel.clone();
        let lease = Lease::start(LEASE, cancel.clone());
        let agent = self.clone();
        let run_id = run_id.to_string();
        let driver_lease = lease.clone();
        s.lease = Some(lease.clone());
        let span = tracing::info_span!("run", run = %plan.run_id, agent = plan.agent_index);
        let (feed_tx, feed) = tokio::sync::mpsc::unbounded_channel();
        s.driver = Some(tokio::spawn(async move {
            let delay = start_delay.min(Duration::from_secs(60));
            let drive = driver::drive(plan, deps, delay, (sink, feed), cancel, driver_lease);
            let outcome = tracing::Instrument::instrument(drive, span).await;
            if let Some(s) = agent.lock().as_mut().filter(|s| s.run_id == run_id) {
                s.phase = Phase::Finished;
                s.since = Instant::now();
            }
            if !outcome.delivered {
                // The coordinator is gone: do not keep runtimes polling the
                // database on our own. Release from a separate task, because
                // release waits for this one.
                let agent = agent.clone();
                tokio::spawn(async move {
                    let _ = agent.release(&run_id).await;
                });
            }
            outcome
        }));
        Ok((lease, feed_tx))
    }

    /// Stop and tear down the run (any phase). Returns the activities executed
    /// after the finish was sent, with their lines of the ledger. Releasing
    /// an idle agent is a no-op.
    pub async fn release(&self, run_id: &str) -> Result<Released, AgentError> {
        let slot = {
            let mut slot = self.lock();
            match slot.as_ref() {
                None => return Ok(Released::default()),
                Some(s) if s.run_id != run_id && !run_id.is_empty() => {
                    return Err(AgentError::Busy { run_id: s.run_id.clone(), phase: s.phase.name() });
                }
                Some(_) => slot.take(),
            }
        };
        let Some(mut s) = slot else { return Ok(Released::default()) };
        s.cancel.cancel();
        let mut mark = None;
        if let Some(handle) = s.driver.take() {
            match tokio::time::timeout(DRIVER_STOP_TIMEOUT, handle).await {
                Ok(Ok(outcome)) => mark = Some(outcome.activities_mark),
                Ok(Err(e)) => tracing::error!(run = %s.run_id, error = %e, "driver task failed"),
                Err(_) => tracing::warn!(run = %s.run_id, "driver did not stop within {DRIVER_STOP_TIMEOUT:?}"),
            }
        }
        if let Some(runtimes) = s.runtimes.take() {
            runtimes.shutdown().await;
        }
        if let Some(successor) = s.successor.take() {
            successor.stop().await;
        }
        // Counted only now: executions that ended while the runtimes shut
        // down, and the successor's last report, arrive after the finish.
        let late = mark.map_or(0, |m| s.counters.total().saturating_sub(m));
        let (runs, dropped) = s.counters.ledger.take();
        if let Some(relay) = s.relay.take() {
            relay.stop();
        }
        if let Some(clock) = &self.config.clock
            && let Err(e) = clock.set(0)
        {
            tracing::warn!(error = %e, "clock not set back at release");
        }
        tracing::info!(run = %s.run_id, late_activities = late, "released");
        if let Some(exit) = &self.exit_after_run {
            tracing::info!("--run-once: exiting after this run");
            exit.cancel();
        }
        Ok(Released { late_activities: late, runs, dropped })
    }

    /// Release a run that its coordinator stopped caring about: prepared but
    /// never run within [`PREPARED_LEASE`], or finished and then its
    /// coordinator's lease lost (control stream closed or silent) without a
    /// Release. (A running one is stopped by the driver itself.)
    fn spawn_lease_watch(&self, run_id: String) {
        let agent = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let expired = {
                    let slot = agent.lock();
                    match slot.as_ref() {
                        Some(s) if s.run_id == run_id => match s.phase {
                            Phase::Prepared => s.since.elapsed() > PREPARED_LEASE,
                            Phase::Finished => s.lease.as_ref().is_none_or(|l| l.lost.is_cancelled()),
                            _ => false,
                        },
                        _ => return,
                    }
                };
                if expired {
                    tracing::warn!(run = %run_id, "coordinator did not come back; releasing the run");
                    let _ = agent.release(&run_id).await;
                    return;
                }
            }
        });
    }

    /// The run's instances as its store shows them (for the audit of a
    /// process-local store), read through the run's client before release.
    pub async fn inspect(
        &self,
        run_id: &str,
        metrics: &[(String, crate::scenario::MetricStart)],
    ) -> Result<crate::inspect::Inspection, AgentError> {
        let client = {
            let slot = self.lock();
            match slot.as_ref() {
                Some(s) if s.run_id == run_id => s.runtimes.as_ref().map(|r| r.client.clone()),
                Some(s) => return Err(AgentError::Busy { run_id: s.run_id.clone(), phase: s.phase.name() }),
                None => None,
            }
        };
        let Some(client) = client else {
            return Err(AgentError::InvalidRequest { field: "run_id", detail: format!("no run {run_id} to inspect") });
        };
        crate::inspect::inspect(&client, run_id, metrics).await.map_err(AgentError::Database)
    }

    /// Release whatever run is active (used on agent shutdown).
    pub async fn release_any(&self) {
        let _ = self.release("").await;
    }
}

mod faults;

#[cfg(test)]
pub(crate) mod tests;
