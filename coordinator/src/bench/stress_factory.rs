//! `PostgresStressFactory`: duroxide's own stress module on the same setup.
//!
//! duroxide ships a single-process stress test (`provider_stress_tests`) that
//! asks a `ProviderStressFactory` for providers. This factory hands it
//! duroxide-pg providers on a fresh schema per call (or one shared schema) and
//! remembers what it created so `cleanup` can drop it: the baseline users know,
//! runnable next to this tool for side-by-side comparisons.

use std::sync::{Arc, Mutex};

use duroxide::provider_stress_tests::StressTestConfig;
use duroxide::provider_stress_tests::parallel_orchestrations::ProviderStressFactory;
use duroxide::providers::Provider;
use duroxide_pg::PostgresProvider;

use loadgen_common::schema::{InvalidSchemaName, new_run_id, validate_schema_name};
use loadgen_common::secret;

/// Which schema each provider gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaMode {
    /// A new `loadgen_stress_<id>` schema per provider (isolated runs).
    Unique,
    /// Every provider on this schema (as several processes would share one).
    Shared(String),
}

/// Creates duroxide-pg providers for duroxide's stress tests.
pub struct PostgresStressFactory {
    url: String,
    mode: SchemaMode,
    config: StressTestConfig,
    created: Mutex<Vec<Arc<PostgresProvider>>>,
}

impl std::fmt::Debug for PostgresStressFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStressFactory")
            .field("url", &secret::mask_url(&self.url))
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PostgresStressFactory {
    /// A factory for `url` (the password never leaves this struct unmasked).
    pub fn new(url: &str, mode: SchemaMode) -> Result<Self, InvalidSchemaName> {
        if let SchemaMode::Shared(s) = &mode {
            validate_schema_name(s)?;
        }
        Ok(PostgresStressFactory {
            url: url.to_string(),
            mode,
            config: StressTestConfig::default(),
            created: Mutex::new(Vec::new()),
        })
    }

    /// Use this configuration when duroxide asks for one.
    pub fn with_config(mut self, config: StressTestConfig) -> Self {
        self.config = config;
        self
    }

    /// Create (and migrate) a provider; the fallible form of `create_provider`.
    pub async fn try_create_provider(&self) -> Result<Arc<PostgresProvider>, String> {
        let schema = match &self.mode {
            SchemaMode::Unique => format!("loadgen_stress_{}", new_run_id()),
            SchemaMode::Shared(s) => s.clone(),
        };
        let provider = PostgresProvider::new_with_schema(&self.url, Some(&schema))
            .await
            .map(Arc::new)
            .map_err(|e| secret::scrub(&format!("creating a provider on schema {schema}: {e:#}"), &self.url))?;
        self.created.lock().unwrap_or_else(|p| p.into_inner()).push(provider.clone());
        Ok(provider)
    }

    /// Schemas created so far (one per provider in unique mode).
    pub fn schemas(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|p| p.schema_name().to_string())
            .collect();
        names.dedup();
        names
    }

    /// Drop every schema this factory created (run after the stress test has
    /// shut its runtime down).
    pub async fn cleanup(&self) -> Result<(), String> {
        let providers: Vec<_> = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        let mut seen = std::collections::HashSet::new();
        for p in providers {
            if seen.insert(p.schema_name().to_string()) {
                p.cleanup_schema().await.map_err(|e| format!("dropping schema {}: {e:#}", p.schema_name()))?;
            }
            p.pool().close().await;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ProviderStressFactory for PostgresStressFactory {
    /// The trait has no error path, so a provider that cannot be created is a
    /// panic with the (password-free) reason; call `try_create_provider` first
    /// to check the database when a `Result` is needed.
    async fn create_provider(&self) -> Arc<dyn Provider> {
        match self.try_create_provider().await {
            Ok(p) => p,
            Err(e) => panic!("PostgresStressFactory: {e}"),
        }
    }

    fn stress_test_config(&self) -> StressTestConfig {
        self.config.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::embedded::EmbeddedPostgres;
    use duroxide::provider_stress_tests::parallel_orchestrations::run_parallel_orchestrations_test_with_config;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duroxide_stress_module_runs_on_the_factory_and_cleans_up() {
        let pg = EmbeddedPostgres::start().await.expect("throwaway postgres");
        let factory = PostgresStressFactory::new(pg.url(), SchemaMode::Unique).expect("factory");
        let config = StressTestConfig {
            max_concurrent: 5,
            duration_secs: 2,
            tasks_per_instance: 2,
            activity_delay_ms: 5,
            orch_concurrency: 1,
            worker_concurrency: 1,
            wait_timeout_secs: 60,
        };
        let result = run_parallel_orchestrations_test_with_config(&factory, config).await.expect("stress test runs");
        assert!(result.launched > 0, "{result:?}");
        assert_eq!(result.completed, result.launched, "{result:?}");
        assert_eq!(result.failed, 0, "{result:?}");
        let schemas = factory.schemas();
        assert_eq!(schemas.len(), 1);
        assert!(schemas[0].starts_with("loadgen_stress_"));
        factory.cleanup().await.expect("cleanup");
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1")
            .bind(&schemas[0])
            .fetch_one(&mut conn)
            .await
            .expect("query");
        assert_eq!(left, 0, "schema left behind");
    }

    #[test]
    fn shared_schemas_are_validated() {
        assert!(PostgresStressFactory::new("postgres://h/db", SchemaMode::Shared("x; drop".into())).is_err());
        let f = PostgresStressFactory::new("postgres://u:pw@h/db", SchemaMode::Shared("ok_name".into())).expect("ok");
        assert!(!format!("{f:?}").contains("pw@"), "{f:?}");
    }
}
