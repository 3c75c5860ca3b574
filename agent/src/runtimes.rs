//! The duroxide runtimes of one agent process and the client that starts
//! orchestrations. Each runtime gets its own provider (its own pool), as a
//! separate application process would; the client gets one more provider so
//! the generator's start calls and completion queries never wait behind the
//! runtimes' own pool. All providers only verify the schema: the coordinator
//! applied the migrations once.

use std::sync::Arc;
use std::time::Duration;

use duroxide::runtime::Runtime;
use duroxide::runtime::observability::ObservabilityConfig;
use duroxide::{Client, RuntimeOptions};
use duroxide_pg::{MigrationPolicy, PostgresProvider, ProviderConfig};
use loadgen_common::secret;

use crate::error::AgentError;
use crate::plan::RuntimeSpec;
use crate::scenario::ActivityCounters;

/// How long each runtime may take to finish in-flight work on shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running runtimes plus the generator's client.
pub struct Runtimes {
    runtimes: Vec<Arc<Runtime>>,
    /// Client used for start calls and failure look-ups.
    pub client: Arc<Client>,
    /// The client's provider, for the batched completion query.
    pub client_provider: Arc<PostgresProvider>,
}

impl std::fmt::Debug for Runtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtimes").field("count", &self.runtimes.len()).finish()
    }
}

async fn connect(url: &str, schema: &str) -> Result<PostgresProvider, AgentError> {
    let mut config = ProviderConfig::url(url);
    config.schema_name = Some(schema.to_string());
    config.migration_policy = MigrationPolicy::VerifyOnly;
    PostgresProvider::new_with_config(config)
        .await
        .map_err(|e| AgentError::Database(secret::scrub(&format!("{e:#}"), url)))
}

impl Runtimes {
    /// Connect to `schema`, verify it, and start `settings.runtimes` runtimes
    /// with every scenario registered on each.
    pub async fn start(
        url: &str,
        schema: &str,
        node_prefix: &str,
        settings: &RuntimeSpec,
        counters: Arc<ActivityCounters>,
    ) -> Result<Self, AgentError> {
        let client_provider = Arc::new(connect(url, schema).await?);
        let client = Arc::new(Client::new(client_provider.clone()));
        let mut runtimes = Vec::with_capacity(settings.runtimes as usize);
        for r in 0..settings.runtimes {
            let provider = match connect(url, schema).await {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    // Do not leave the runtimes started so far running.
                    Self { runtimes, client, client_provider }.shutdown().await;
                    return Err(e);
                }
            };
            let (activities, orchestrations) = crate::scenario::registries(Arc::clone(&counters));
            let defaults = RuntimeOptions::default();
            let options = RuntimeOptions {
                orchestrator_lock_timeout: settings
                    .orchestrator_lock_timeout
                    .unwrap_or(defaults.orchestrator_lock_timeout),
                worker_lock_timeout: settings.worker_lock_timeout.unwrap_or(defaults.worker_lock_timeout),
                dispatcher_min_poll_interval: settings.poll_interval,
                orchestration_concurrency: settings.orchestration_concurrency as usize,
                worker_concurrency: settings.worker_concurrency as usize,
                worker_node_id: Some(format!("{node_prefix}-r{r}")),
                observability: ObservabilityConfig {
                    // Each gauge poll runs a costly COUNT over the history; a
                    // load generator must not add that to what it measures.
                    gauge_poll_interval: Duration::from_secs(24 * 3600),
                    ..Default::default()
                },
                ..Default::default()
            };
            runtimes.push(Runtime::start_with_options(provider, activities, orchestrations, options).await);
        }
        Ok(Self { runtimes, client, client_provider })
    }

    /// Shut every runtime down (bounded) and drop the pools.
    pub async fn shutdown(self) {
        let grace = u64::try_from(SHUTDOWN_GRACE.as_millis()).unwrap_or(u64::MAX);
        let all = self.runtimes.into_iter().map(|rt| rt.shutdown(Some(grace)));
        // Bound the whole shutdown even if a runtime's tasks ignore cancellation.
        if tokio::time::timeout(SHUTDOWN_GRACE * 2, futures_join_all(all)).await.is_err() {
            tracing::warn!("runtimes did not shut down within {:?}", SHUTDOWN_GRACE * 2);
        }
        self.client_provider.pool().close().await;
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
