//! The duroxide runtimes of one agent process and the client that starts
//! orchestrations. Each runtime gets its own provider (its own pool), as a
//! separate application process would; the client gets one more provider so
//! the generator's start calls and completion queries never wait behind the
//! runtimes' own pool. All providers only verify the schema: the coordinator
//! applied the migrations once (or, in an A/B run, the client's provider
//! applies this build's own first).
//!
//! A scheduled `restart-runtime` fault shuts one runtime down and starts a
//! fresh one in its place, so the runtimes live in a [`Fleet`] shared with
//! the fault: a std `Mutex` over the slots (held only to take or put a
//! runtime, never across an `.await`) and a `closed` flag checked under the
//! same lock, so a restart that finishes after the run's shutdown began
//! shuts its new runtime down instead of leaving it polling.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use duroxide::providers::sqlite::SqliteProvider;
use duroxide::runtime::Runtime;
use duroxide::runtime::observability::ObservabilityConfig;
use duroxide::{Client, RuntimeOptions};
use duroxide_pg::{MigrationPolicy, PostgresProvider, ProviderConfig};
use loadgen_common::dburl::DbUrl;
use loadgen_common::schema::{agent_application_name, agent_connection_name};
use loadgen_common::secret;

use crate::error::AgentError;
use crate::plan::RuntimeSpec;
use crate::scenario::ActivityCounters;

/// How long each runtime may take to finish in-flight work on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a runtime restarted by a fault may finish in-flight work: a
/// rolling restart's grace, short enough that some work is abandoned and
/// must be picked up by others once its locks expire.
const RESTART_GRACE: Duration = Duration::from_secs(1);

/// The running runtimes plus the generator's client.
pub struct Runtimes {
    fleet: Arc<Fleet>,
    /// Client used for start calls and failure look-ups.
    pub client: Arc<Client>,
    /// The client's Postgres provider, for the batched completion query
    /// (`None` on SQLite, tracked through the client API).
    pub client_provider: Option<Arc<PostgresProvider>>,
}

impl std::fmt::Debug for Runtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtimes").field("count", &self.fleet.lock().slots.len()).finish()
    }
}

/// Where the runtimes keep their state.
#[derive(Clone)]
pub enum Backend {
    /// duroxide-pg on `schema`: each runtime its own provider (its own pool);
    /// with `migrate`, the client's provider applies this build's migrations.
    Postgres { url: String, schema: String, migrate: bool },
    /// duroxide's SQLite provider (in memory or a file): process-local, so
    /// every runtime and the client share this one provider.
    Sqlite(Arc<SqliteProvider>),
}

/// What it takes to start one more runtime like the others.
struct Recipe {
    backend: Backend,
    node_prefix: String,
    settings: RuntimeSpec,
    counters: Arc<ActivityCounters>,
}

struct Slots {
    /// `None` while a runtime is down for a restart.
    slots: Vec<Option<Arc<Runtime>>>,
    /// Set once the run's shutdown began: nothing new may start.
    closed: bool,
    /// Runtimes started by restarts so far (their worker ids' suffix).
    restarts: u32,
}

/// The runtimes, shared between the run and a restart fault.
pub struct Fleet {
    recipe: Recipe,
    state: Mutex<Slots>,
}

async fn connect(url: &str, schema: &str, migrate: bool, node: &str) -> Result<PostgresProvider, AgentError> {
    // Named for the run and this agent, so operators, the coordinator and
    // one agent's faults tell its connections apart (a URL the relay
    // rewrote parses like any other).
    let name = agent_connection_name(schema, node).unwrap_or_else(|| agent_application_name(schema));
    let named =
        DbUrl::parse(url).map(|u| u.with_param_default("application_name", &name)).unwrap_or_else(|_| url.to_string());
    let mut config = ProviderConfig::url(&named);
    config.schema_name = Some(schema.to_string());
    config.migration_policy = if migrate { MigrationPolicy::ApplyAll } else { MigrationPolicy::VerifyOnly };
    PostgresProvider::new_with_config(config)
        .await
        .map_err(|e| AgentError::Database(secret::scrub(&format!("{e:#}"), url)))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Fleet {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Every critical section is a take or a put: a panic cannot leave it
        // half done, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start one runtime with every scenario registered, as worker `node`.
    async fn start_one(&self, node: String) -> Result<Arc<Runtime>, AgentError> {
        let r = &self.recipe;
        let provider: Arc<dyn duroxide::providers::Provider> = match &r.backend {
            Backend::Postgres { url, schema, .. } => {
                Arc::new(connect(url, schema, false, &self.recipe.node_prefix).await?)
            }
            Backend::Sqlite(p) => Arc::clone(p) as Arc<dyn duroxide::providers::Provider>,
        };
        let (activities, orchestrations) = crate::scenario::registries(Arc::clone(&r.counters));
        let defaults = RuntimeOptions::default();
        let s = &r.settings;
        let options = RuntimeOptions {
            orchestrator_lock_timeout: s.orchestrator_lock_timeout.unwrap_or(defaults.orchestrator_lock_timeout),
            worker_lock_timeout: s.worker_lock_timeout.unwrap_or(defaults.worker_lock_timeout),
            dispatcher_min_poll_interval: s.poll_interval,
            orchestration_concurrency: s.orchestration_concurrency as usize,
            worker_concurrency: s.worker_concurrency as usize,
            worker_node_id: Some(node),
            observability: ObservabilityConfig {
                // Each gauge poll runs a costly COUNT over the history; a
                // load generator must not add that to what it measures.
                gauge_poll_interval: Duration::from_secs(24 * 3600),
                ..Default::default()
            },
            ..Default::default()
        };
        Ok(Runtime::start_with_options(provider, activities, orchestrations, options).await)
    }

    /// Each running runtime's own counters (duroxide's snapshot).
    pub fn snapshots(&self) -> Vec<duroxide::runtime::observability::MetricsSnapshot> {
        self.lock().slots.iter().flatten().filter_map(|rt| rt.metrics_snapshot()).collect()
    }

    /// The Postgres URL and schema the runtimes use (none on SQLite).
    pub fn postgres(&self) -> Option<(&str, &str)> {
        match &self.recipe.backend {
            Backend::Postgres { url, schema, .. } => Some((url, schema)),
            Backend::Sqlite(_) => None,
        }
    }

    /// The settings every runtime starts with.
    pub fn settings(&self) -> &RuntimeSpec {
        &self.recipe.settings
    }

    /// Shut every runtime down (a second's grace each) and start no more:
    /// their work goes to whoever runs next (a successor process).
    pub async fn stop_all(&self) -> usize {
        let all: Vec<Arc<Runtime>> = {
            let mut s = self.lock();
            s.closed = true;
            s.slots.iter_mut().filter_map(Option::take).collect()
        };
        let n = all.len();
        for rt in all {
            bounded_shutdown(rt, RESTART_GRACE).await;
        }
        n
    }

    /// Shut runtime `index` (modulo the count) down, leave it down for
    /// `downtime`, and start a fresh one with a new worker id in its place.
    /// Returns what happened, for the fault's log line.
    pub async fn restart(&self, index: u32, downtime: Duration) -> Result<String, String> {
        let (slot, old, generation) = {
            let mut s = self.lock();
            if s.closed {
                return Err("the run is shutting down".into());
            }
            let n = s.slots.len();
            if n == 0 {
                return Err("the agent runs no runtime".into());
            }
            let slot = index as usize % n;
            let old = s.slots.get_mut(slot).and_then(Option::take);
            s.restarts += 1;
            (slot, old, s.restarts)
        };
        let Some(old) = old else {
            return Err(format!("runtime {slot} is already down (another restart)"));
        };
        tracing::info!(runtime = slot, ?downtime, "restarting a runtime");
        bounded_shutdown(old, RESTART_GRACE).await;
        tokio::time::sleep(downtime).await;
        let node = format!("{}-r{slot}-g{generation}", self.recipe.node_prefix);
        let fresh = self.start_one(node.clone()).await.map_err(|e| format!("the fresh runtime did not start: {e}"))?;
        let refused = {
            let mut guard = self.lock();
            let s = &mut *guard;
            match s.slots.get_mut(slot) {
                Some(place) if !s.closed => {
                    *place = Some(fresh);
                    None
                }
                _ => Some(fresh),
            }
        };
        if let Some(fresh) = refused {
            bounded_shutdown(fresh, SHUTDOWN_GRACE).await;
            return Err("the run shut down while the runtime restarted".into());
        }
        tracing::info!(runtime = slot, node = %node, "runtime restarted");
        Ok(format!(
            "runtime {slot} shut down ({} grace), down {}, started again as {node}",
            loadgen_common::units::format_duration(RESTART_GRACE),
            loadgen_common::units::format_duration(downtime)
        ))
    }
}

/// Shut `rt` down with `grace` for in-flight work, bounded even if its
/// tasks ignore cancellation.
async fn bounded_shutdown(rt: Arc<Runtime>, grace: Duration) {
    if tokio::time::timeout(grace * 2 + Duration::from_secs(1), rt.shutdown(Some(millis(grace)))).await.is_err() {
        tracing::warn!("a runtime did not shut down within {:?}", grace * 2);
    }
}

impl Runtimes {
    /// Connect to the backend (Postgres: verify the schema, or with
    /// `migrate` apply this build's migrations first), and start
    /// `settings.runtimes` runtimes with every scenario registered on each.
    pub async fn start(
        backend: Backend,
        node_prefix: &str,
        settings: &RuntimeSpec,
        counters: Arc<ActivityCounters>,
    ) -> Result<Self, AgentError> {
        let (client, client_provider) = match &backend {
            Backend::Postgres { url, schema, migrate } => {
                let p = Arc::new(connect(url, schema, *migrate, node_prefix).await?);
                (Arc::new(Client::new(p.clone())), Some(p))
            }
            Backend::Sqlite(p) => (Arc::new(Client::new(p.clone())), None),
        };
        let fleet = Arc::new(Fleet {
            recipe: Recipe { backend, node_prefix: node_prefix.to_string(), settings: settings.clone(), counters },
            state: Mutex::new(Slots { slots: Vec::new(), closed: false, restarts: 0 }),
        });
        let runtimes = Self { fleet, client, client_provider };
        for r in 0..settings.runtimes {
            match runtimes.fleet.start_one(format!("{node_prefix}-r{r}")).await {
                Ok(rt) => runtimes.fleet.lock().slots.push(Some(rt)),
                Err(e) => {
                    // Do not leave the runtimes started so far running.
                    runtimes.shutdown().await;
                    return Err(e);
                }
            }
        }
        Ok(runtimes)
    }

    /// The runtimes, for a restart fault.
    pub fn fleet(&self) -> Arc<Fleet> {
        Arc::clone(&self.fleet)
    }

    /// Shut every runtime down (bounded) and drop the pools.
    pub async fn shutdown(self) {
        let all: Vec<Arc<Runtime>> = {
            let mut s = self.fleet.lock();
            s.closed = true;
            s.slots.iter_mut().filter_map(Option::take).collect()
        };
        let grace = millis(SHUTDOWN_GRACE);
        let all = all.into_iter().map(|rt| rt.shutdown(Some(grace)));
        // Bound the whole shutdown even if a runtime's tasks ignore cancellation.
        if tokio::time::timeout(SHUTDOWN_GRACE * 2, futures_join_all(all)).await.is_err() {
            tracing::warn!("runtimes did not shut down within {:?}", SHUTDOWN_GRACE * 2);
        }
        if let Some(p) = &self.client_provider {
            p.pool().close().await;
        }
    }
}

/// Await every future concurrently (a tiny join_all without the futures crate).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futs: impl Iterator<Item = F>) {
    let mut set = tokio::task::JoinSet::new();
    for f in futs {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(runtimes: u32) -> RuntimeSpec {
        RuntimeSpec {
            runtimes,
            orchestration_concurrency: 1,
            worker_concurrency: 1,
            poll_interval: Duration::from_millis(50),
            orchestrator_lock_timeout: None,
            worker_lock_timeout: None,
        }
    }

    async fn sqlite() -> Backend {
        Backend::Sqlite(Arc::new(SqliteProvider::new_in_memory().await.expect("an in-memory store")))
    }

    #[tokio::test]
    async fn a_restart_replaces_one_runtime_with_a_fresh_worker_id_and_shutdown_refuses_more() {
        let counters = Arc::new(ActivityCounters::new());
        let rts = Runtimes::start(sqlite().await, "run-a0", &settings(2), counters).await.expect("start");
        let fleet = rts.fleet();
        // Runtime 3 of 2 is runtime 1 (modulo the count); its fresh node says so.
        let detail = fleet.restart(3, Duration::ZERO).await.expect("restart");
        assert!(detail.starts_with("runtime 1 shut down") && detail.ends_with("run-a0-r1-g1"), "{detail}");
        let again = fleet.restart(1, Duration::from_millis(10)).await.expect("restart again");
        assert!(again.ends_with("run-a0-r1-g2"), "{again}");
        rts.shutdown().await;
        assert_eq!(fleet.restart(0, Duration::ZERO).await, Err("the run is shutting down".to_string()));
    }

    #[tokio::test]
    async fn an_agent_of_no_runtimes_says_so() {
        let counters = Arc::new(ActivityCounters::new());
        let rts = Runtimes::start(sqlite().await, "run-a0", &settings(0), counters).await.expect("start");
        assert_eq!(rts.fleet().restart(0, Duration::ZERO).await, Err("the agent runs no runtime".to_string()));
        rts.shutdown().await;
    }
}
