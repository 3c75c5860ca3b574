//! The agent's gRPC service: a thin layer that converts requests into domain
//! calls on [`Agent`], which holds the one run this agent may serve at a time.
//!
//! State lives behind a std `Mutex`, never held across an `.await`: every
//! transition is a short check-and-set, and the slow work (connecting,
//! starting runtimes, driving load) happens outside the lock.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use loadgen_common::proto::agent_server::Agent as AgentRpc;
use loadgen_common::proto::{self, RunEvent};
use loadgen_common::schema::validate_schema_name;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::AgentConfig;
use crate::driver::{self, Deps, OpenLoop, Plan};
use crate::error::AgentError;
use crate::lease::{LEASE, Lease};
use crate::relay::Relay;
use crate::runtimes::Runtimes;
use crate::scenario;
use crate::tracker::Tracker;
use loadgen_common::DUROXIDE_PG_VERSION;
use loadgen_common::dburl::{DbUrl, Endpoint};

/// A prepared run whose Run never comes is released after this long.
pub const PREPARED_LEASE: Duration = Duration::from_secs(60);
/// Bound on waiting for the driver when a run is released.
const DRIVER_STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Preparing,
    Prepared,
    Running,
    Finished,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Prepared => "prepared",
            Phase::Running => "running",
            Phase::Finished => "finished",
        }
    }
}

struct Session {
    run_id: String,
    phase: Phase,
    since: Instant,
    runtimes: Option<Runtimes>,
    deps: Option<Deps>,
    plan: Option<Plan>,
    cancel: CancellationToken,
    driver: Option<JoinHandle<driver::Outcome>>,
    executed: Arc<AtomicU64>,
    /// Delay relay between the providers and Postgres, when asked for.
    relay: Option<Relay>,
    /// The coordinator's heartbeat lease, once running.
    lease: Option<Lease>,
}

/// The agent: configuration plus the run it currently serves.
#[derive(Clone)]
pub struct Agent {
    config: Arc<AgentConfig>,
    session: Arc<Mutex<Option<Session>>>,
    /// Cancelled after the first run is released (`--run-once`).
    exit_after_run: Option<CancellationToken>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").finish_non_exhaustive()
    }
}

impl Agent {
    /// A new idle agent.
    pub fn new(config: AgentConfig) -> Self {
        Agent { config: Arc::new(config), session: Arc::new(Mutex::new(None)), exit_after_run: None }
    }

    /// Cancel `token` once a run has been released (for `--run-once`).
    pub fn exit_after_run(mut self, token: CancellationToken) -> Self {
        self.exit_after_run = Some(token);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        // A panic while holding this lock cannot leave a half-made transition
        // (each is a single assignment), so a poisoned lock is still usable.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Identity, versions and state.
    pub fn hello(&self) -> proto::HelloReply {
        let state = self.lock().as_ref().map_or("idle", |s| s.phase.name());
        proto::HelloReply {
            protocol_version: proto::PROTOCOL_VERSION,
            agent_version: loadgen_common::TOOL_VERSION.to_string(),
            duroxide_version: duroxide::current_build_version().to_string(),
            duroxide_pg_version: DUROXIDE_PG_VERSION.to_string(),
            hostname: self.config.hostname.clone(),
            pid: std::process::id(),
            state: state.to_string(),
            pool_max: self.config.pool_max,
        }
    }

    /// Verify the schema and start the runtimes for a run; returns what the
    /// scenario's instances must end with.
    pub async fn prepare(&self, req: proto::PrepareRequest) -> Result<proto::PrepareReply, AgentError> {
        {
            let mut slot = self.lock();
            if let Some(s) = slot.as_ref() {
                return Err(AgentError::Busy { run_id: s.run_id.clone(), phase: s.phase.name() });
            }
            *slot = Some(Session {
                run_id: req.run_id.clone(),
                phase: Phase::Preparing,
                since: Instant::now(),
                runtimes: None,
                deps: None,
                plan: None,
                cancel: CancellationToken::new(),
                driver: None,
                executed: Arc::new(AtomicU64::new(0)),
                relay: None,
                lease: None,
            });
        }
        match self.build(&req).await {
            Ok((runtimes, deps, plan, relay)) => {
                let reply = proto::PrepareReply {
                    expected_output: deps.scenario.expected_output(),
                    activities_per_instance: deps.scenario.activities_per_instance(),
                };
                // Hand the runtimes to the session unless it was released meanwhile.
                let leftover = {
                    let mut slot = self.lock();
                    match slot.as_mut() {
                        Some(s) if s.run_id == req.run_id && s.phase == Phase::Preparing => {
                            s.relay = relay;
                            s.runtimes = Some(runtimes);
                            s.deps = Some(deps);
                            s.plan = Some(plan);
                            s.phase = Phase::Prepared;
                            s.since = Instant::now();
                            None
                        }
                        _ => Some(runtimes),
                    }
                };
                if let Some(runtimes) = leftover {
                    runtimes.shutdown().await;
                    return Err(AgentError::UnknownRun { run_id: req.run_id, expected: "being prepared" });
                }
                self.spawn_lease_watch(req.run_id.clone());
                tracing::info!(run = %req.run_id, schema = %req.schema, agent = req.agent_index, "prepared");
                Ok(reply)
            }
            Err(e) => {
                let mut slot = self.lock();
                if slot.as_ref().is_some_and(|s| s.run_id == req.run_id) {
                    *slot = None;
                }
                tracing::warn!(run = %req.run_id, error = %e, "prepare failed");
                Err(e)
            }
        }
    }

    async fn build(&self, req: &proto::PrepareRequest) -> Result<(Runtimes, Deps, Plan, Option<Relay>), AgentError> {
        let invalid = |field, detail: &str| AgentError::InvalidRequest { field, detail: detail.to_string() };
        if req.run_id.is_empty() || !req.run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid("run_id", "must be non-empty and alphanumeric"));
        }
        validate_schema_name(&req.schema).map_err(|e| invalid("schema", &e.to_string()))?;
        let settings = req.runtime.ok_or_else(|| invalid("runtime", "missing"))?;
        if settings.runtimes == 0 || settings.runtimes > 64 {
            return Err(invalid("runtimes", "must be 1..=64"));
        }
        if settings.orchestration_concurrency == 0 || settings.worker_concurrency == 0 {
            return Err(invalid("dispatcher concurrency", "must be at least 1"));
        }
        if settings.poll_interval_ms == 0 {
            return Err(invalid("poll interval", "must be positive"));
        }
        // duroxide panics at start unless its session idle timeout (5 min)
        // exceeds the worker lock timeout less its renewal buffer.
        if settings.worker_lock_timeout_ms > 300_000 {
            return Err(invalid("worker lock timeout", "must be at most 5 minutes"));
        }
        if req.concurrency == 0 || req.duration_ms == 0 || req.drain_timeout_ms == 0 || req.completion_poll_ms == 0 {
            return Err(invalid("plan", "concurrency, duration, drain timeout and completion poll must be positive"));
        }
        let spec = req.scenario.as_ref().ok_or_else(|| invalid("scenario", "missing"))?;
        let scenario = scenario::build(spec)?;
        let executed = self.lock().as_ref().map(|s| s.executed.clone()).unwrap_or_default();
        let node = format!("{}-a{}", req.run_id, req.agent_index);
        let (url, relay) = self.database_route(Duration::from_micros(req.db_latency_us)).await?;
        let runtimes =
            Runtimes::start(&url, &req.schema, &node, &settings, scenario.as_ref(), executed.clone()).await?;
        let deps = Deps {
            client: runtimes.client.clone(),
            provider: runtimes.client_provider.clone(),
            tracker: Tracker::new(&req.schema),
            scenario,
            executed,
        };
        let plan = Plan {
            run_id: req.run_id.clone(),
            agent_index: req.agent_index,
            concurrency: u64::from(req.concurrency),
            duration: Duration::from_millis(req.duration_ms),
            drain_timeout: Duration::from_millis(req.drain_timeout_ms),
            completion_poll: Duration::from_millis(req.completion_poll_ms),
            open: (req.rate_per_sec > 0.0).then(|| OpenLoop {
                rate_per_sec: req.rate_per_sec,
                poisson: req.arrival == "poisson",
                offset: Duration::from_micros(req.schedule_offset_us),
                seed: req.seed,
            }),
        };
        Ok((runtimes, deps, plan, relay))
    }

    /// The URL the providers use: the agent's own, or, with an artificial
    /// delay, the same URL pointed at a delay relay on loopback.
    async fn database_route(&self, delay: Duration) -> Result<(String, Option<Relay>), AgentError> {
        let url = &self.config.database_url;
        if delay.is_zero() {
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

    /// Start the prepared run; returns the stream of progress and result, and
    /// the lease the caller renews with the coordinator's heartbeats.
    pub fn run(&self, req: proto::RunRequest) -> Result<(mpsc::Receiver<Result<RunEvent, Status>>, Lease), AgentError> {
        let (tx, rx) = mpsc::channel(64);
        let mut slot = self.lock();
        let Some(s) = slot.as_mut().filter(|s| s.run_id == req.run_id && s.phase == Phase::Prepared) else {
            return Err(match slot.as_ref() {
                Some(s) if s.run_id != req.run_id => {
                    AgentError::Busy { run_id: s.run_id.clone(), phase: s.phase.name() }
                }
                _ => AgentError::UnknownRun { run_id: req.run_id, expected: "prepared" },
            });
        };
        let (Some(plan), Some(deps)) = (s.plan.clone(), s.deps.clone()) else {
            return Err(AgentError::UnknownRun { run_id: req.run_id, expected: "prepared" });
        };
        s.phase = Phase::Running;
        s.since = Instant::now();
        let cancel = s.cancel.clone();
        let lease = Lease::start(LEASE, cancel.clone());
        let agent = self.clone();
        let run_id = req.run_id.clone();
        let delay = Duration::from_millis(req.start_delay_ms.min(60_000));
        let driver_lease = lease.clone();
        s.lease = Some(lease.clone());
        s.driver = Some(tokio::spawn(async move {
            let outcome = driver::drive(plan, deps, delay, tx, cancel, driver_lease).await;
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
        Ok((rx, lease))
    }

    /// Stop and tear down the run (any phase). Returns the activities executed
    /// after the result was sent. Releasing an idle agent is a no-op.
    pub async fn release(&self, run_id: &str) -> Result<u64, AgentError> {
        let session = {
            let mut slot = self.lock();
            match slot.as_ref() {
                None => return Ok(0),
                Some(s) if s.run_id != run_id && !run_id.is_empty() => {
                    return Err(AgentError::Busy { run_id: s.run_id.clone(), phase: s.phase.name() });
                }
                Some(_) => slot.take(),
            }
        };
        let Some(mut s) = session else { return Ok(0) };
        s.cancel.cancel();
        let mut late = 0;
        if let Some(handle) = s.driver.take() {
            match tokio::time::timeout(DRIVER_STOP_TIMEOUT, handle).await {
                Ok(Ok(outcome)) => late = s.executed.load(Ordering::Relaxed).saturating_sub(outcome.activities_mark),
                Ok(Err(e)) => tracing::error!(run = %s.run_id, error = %e, "driver task failed"),
                Err(_) => tracing::warn!(run = %s.run_id, "driver did not stop within {DRIVER_STOP_TIMEOUT:?}"),
            }
        }
        if let Some(runtimes) = s.runtimes.take() {
            runtimes.shutdown().await;
        }
        if let Some(relay) = s.relay.take() {
            relay.stop();
        }
        tracing::info!(run = %s.run_id, late_activities = late, "released");
        if let Some(exit) = &self.exit_after_run {
            tracing::info!("--run-once: exiting after this run");
            exit.cancel();
        }
        Ok(late)
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

    /// Release whatever run is active (used on agent shutdown).
    pub async fn release_any(&self) {
        let _ = self.release("").await;
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<RunEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AgentRpc for Agent {
    async fn hello(&self, _req: Request<proto::HelloRequest>) -> Result<Response<proto::HelloReply>, Status> {
        Ok(Response::new(Agent::hello(self)))
    }

    async fn prepare(&self, req: Request<proto::PrepareRequest>) -> Result<Response<proto::PrepareReply>, Status> {
        Ok(Response::new(Agent::prepare(self, req.into_inner()).await?))
    }

    type RunStream = EventStream;

    async fn run(&self, req: Request<Streaming<proto::RunControl>>) -> Result<Response<Self::RunStream>, Status> {
        use proto::run_control::Control;
        let mut control = req.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), control.message()).await;
        let Ok(Ok(Some(proto::RunControl { control: Some(Control::Start(start)) }))) = first else {
            return Err(Status::invalid_argument("the first message of Run must be `start`"));
        };
        let (rx, lease) = Agent::run(self, start)?;
        // Feed the coordinator's heartbeats and stop requests into the lease.
        tokio::spawn(async move {
            loop {
                match control.message().await {
                    Ok(Some(proto::RunControl { control: Some(Control::Heartbeat(_)) })) => lease.renew(),
                    Ok(Some(proto::RunControl { control: Some(Control::Stop(s)) })) => {
                        tracing::info!(reason = %s.reason, "stop requested");
                        lease.renew();
                        lease.stop.cancel();
                    }
                    Ok(Some(_)) => lease.renew(),
                    Ok(None) => return lease.lose("the coordinator closed its control stream".into()),
                    Err(e) => return lease.lose(format!("control stream failed: {}", e.message())),
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn release(&self, req: Request<proto::ReleaseRequest>) -> Result<Response<proto::ReleaseReply>, Status> {
        let late_activities = Agent::release(self, &req.into_inner().run_id).await?;
        Ok(Response::new(proto::ReleaseReply { late_activities }))
    }
}
