//! The load driver of one agent: closed loop (keep a slice in flight) or
//! open loop (start on a schedule, constant or Poisson, whatever the latency).
//!
//! One task owns all run state (no locks on the hot path): it keeps the
//! agent's slice in flight (or follows its schedule) until the deadline,
//! learns completions from one batched query per tick ([`poll`]), records
//! latencies per scenario into HDR histograms ([`tallies`]), hands one
//! interval a second to its [`Sink`], drains within a bound and ends with
//! [`Finish`]. Client calls (starts, hooks, background messages) run as
//! spawned tasks and report back over channels ([`launch`]).
//!
//! The load shape is data ([`RunSpec`]'s `Load`); the same loop serves both.
//!
//! Completions come from this agent's own query ([`Tracking::Agent`]) or,
//! with [`Tracking::Cluster`], from the coordinator: the driver then reports
//! the ids it started every `loadgen_common::tracker::start_report_interval` and is fed the terminal ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use duroxide::Client;
use duroxide_pg::PostgresProvider;
use loadgen_common::tally::{Finish, Interval};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::plan::{RunSpec, Tracking};
use crate::scenario::{ActivityCounters, Background, Outcome, Scenario};
use crate::tracker::{Finished, Tracker};
use loadgen_common::stages::Arrivals;

mod launch;
mod poll;
mod run;
mod tallies;

pub use poll::end_to_end;
pub use run::drive;
use tallies::Tallies;

/// Progress interval.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// A closed loop whose target changes over time looks at it this often (as
/// well as on every completion).
const STAGE_TICK: Duration = Duration::from_millis(50);

/// Where the driver's intervals and its finish go (the service layer puts
/// them on the wire). `send` returns false when nobody listens any more.
pub trait Sink: Send {
    fn interval(&mut self, i: Interval) -> impl std::future::Future<Output = bool> + Send;
    fn finish(&mut self, f: Finish) -> impl std::future::Future<Output = bool> + Send;
    /// Cluster tracking: instances started since the last call.
    fn started(&mut self, ids: Vec<String>) -> impl std::future::Future<Output = bool> + Send;
}

/// Cluster tracking: where the coordinator's completions for this agent arrive.
pub type Feed = mpsc::UnboundedReceiver<Vec<Finished>>;

/// What the driver needs from the agent.
#[derive(Clone)]
pub struct Deps {
    pub client: Arc<Client>,
    /// How this agent learns completions itself (agent tracking).
    pub tracking: OwnTracking,
    pub workload: Arc<dyn Scenario>,
    pub counters: Arc<ActivityCounters>,
}

/// How an agent tracking its own completions asks.
#[derive(Clone)]
pub enum OwnTracking {
    /// The batched query on duroxide-pg's tables, on the client's pool.
    Query(Tracker, Arc<PostgresProvider>),
    /// The batched query on duroxide's SQLite tables, on the store's pool.
    Sqlite(Arc<duroxide::providers::sqlite::SqliteProvider>),
    /// duroxide's client API, instance by instance (a Postgres build whose
    /// tables this tool does not know).
    Client(Arc<Client>),
}

impl std::fmt::Debug for OwnTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OwnTracking::Query(..) => "OwnTracking::Query",
            OwnTracking::Sqlite(_) => "OwnTracking::Sqlite",
            OwnTracking::Client(_) => "OwnTracking::Client",
        })
    }
}

impl OwnTracking {
    /// Which of `ids` are terminal now.
    pub async fn poll(&self, ids: &[String]) -> Result<Vec<crate::tracker::Finished>, String> {
        match self {
            OwnTracking::Query(t, provider) => t.poll(provider.pool(), ids).await,
            OwnTracking::Sqlite(store) => crate::tracker::poll_sqlite(store.get_pool(), ids).await,
            OwnTracking::Client(c) => crate::tracker::poll_client(c, ids).await,
        }
    }
}

/// How the run ended, for the agent's bookkeeping.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Activity executions when the finish was sent: executions after it
    /// are reported on release.
    pub activities_mark: u64,
    /// False when the coordinator stopped listening before the end.
    pub delivered: bool,
}

/// When something happened, on both clocks: the monotonic one for observed
/// latency, the wall clock to compare with the database's completion time.
#[derive(Clone, Copy, Debug)]
pub struct Issued {
    pub at: Instant,
    pub wall: SystemTime,
}

/// What the driver remembers of an orchestration in flight.
#[derive(Clone, Debug)]
struct Flight {
    scenario: &'static str,
    outcome: Outcome,
    issued: Issued,
    /// Open loop: when the start was due.
    intended: Option<Issued>,
    /// A latency sample. Setup instances (hot instances) live for the whole
    /// run by design: their lifetime is the run's length, not a latency, and
    /// would swamp every percentile of a mixed run.
    timed: bool,
}

struct Driver<S> {
    plan: RunSpec,
    deps: Deps,
    sink: S,
    t0: Instant,
    /// The wall clock at `t0`, to place intended start times on it.
    wall0: SystemTime,
    in_flight: HashMap<String, Flight>,
    /// Open loop: when the next start is due, and the due times after it.
    next_due: Option<Instant>,
    arrivals: Option<Arrivals>,
    pending_starts: u64,
    next_seq: u64,
    retry_at: Option<Instant>,
    tallies: Tallies,
    failures_logged: u32,
    launch_tx: mpsc::UnboundedSender<launch::Launched>,
    poll_tx: mpsc::UnboundedSender<poll::Polled>,
    act_tx: mpsc::UnboundedSender<launch::Acted>,
    poll_pending: bool,
    /// Cluster tracking: started ids not yet reported.
    started: Vec<String>,
    /// Hook and message calls under way (aborted when the run ends).
    hooks: JoinSet<()>,
    background: Option<Box<dyn Background>>,
    messages_pending: u64,
    /// The background's final messages were sent.
    background_done: bool,
    /// Provider errors counted before the run (each report sends those since).
    errors_before: std::collections::BTreeMap<String, u64>,
}

impl<S: Sink> Driver<S> {
    /// Hand this interval's counts and histograms to the sink; false when
    /// nobody listens any more.
    async fn send_interval(&mut self) -> bool {
        let elapsed = u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut interval = self.tallies.take(elapsed, self.occupied());
        interval.provider_errors = crate::metrics::since(&self.errors_before);
        self.sink.interval(interval).await
    }
}

impl<S> Driver<S> {
    /// Follow a started instance until it is terminal.
    fn track(&mut self, id: String, flight: Flight) {
        if self.plan.tracking == Tracking::Cluster {
            self.started.push(id.clone());
        }
        self.in_flight.insert(id, flight);
    }

    /// Start the background's setup instances (hot instances) before any
    /// message is sent: this agent's own are followed like any other; the
    /// others' are started too, so they exist before this agent messages
    /// them (a second start of an id is ignored).
    async fn setup_background(&mut self) {
        let Some(bg) = self.background.as_ref() else { return };
        for s in bg.setup() {
            let issued = Issued { at: Instant::now(), wall: SystemTime::now() };
            let call = self.deps.client.start_orchestration(
                s.instance.as_str(),
                s.start.orchestration,
                s.start.input.as_str(),
            );
            let result = match tokio::time::timeout(launch::START_TIMEOUT, call).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("start call took longer than {:?}", launch::START_TIMEOUT)),
            };
            let scenario = s.start.scenario;
            if let Err(e) = &result {
                tracing::warn!(instance = %s.instance, error = %e, "setup start failed");
            }
            if !s.tracked {
                continue;
            }
            self.tallies.of(scenario).hist.start.record(issued.at.elapsed());
            match result {
                Ok(()) => {
                    self.tallies.count(scenario, 1, |c| &mut c.launched);
                    let outcome = crate::scenario::Outcome::Completed(crate::scenario::Output::Any);
                    self.track(s.instance, Flight { scenario, outcome, issued, intended: None, timed: false });
                }
                Err(_) => self.tallies.count(scenario, 1, |c| &mut c.start_errors),
            }
        }
    }

    /// At the end of the load: once every background message and setup
    /// start has returned, send the final messages; done once they return.
    fn finish_background(&mut self) {
        if self.background_done || self.messages_pending > 0 || self.pending_starts > 0 {
            return;
        }
        let Some(bg) = self.background.as_ref() else { return };
        if self.background_done {
            return;
        }
        let last = bg.finish();
        // Mark first: `send_message` counts them as pending, and the loop
        // ends only when they have returned.
        self.background_done = true;
        for m in last {
            self.send_message(m);
        }
    }
}
