//! duroxide's stress module in a process of its own, so it is measured the
//! way an agent is: its orchestrations per second as it reports them, and
//! the CPU seconds its process used over the test, read from `/proc`.
//!
//! The bench starts this executable again with the hidden `stress-module`
//! command and one JSON job; the child runs the module once on the job's
//! provider (a fresh duroxide-pg schema it drops afterwards, or an in-memory
//! SQLite store) and prints one JSON line with the outcome. A separate
//! process, not a task in the bench's own: the bench's threads, its
//! throwaway Postgres's children and this tool's previous run would
//! otherwise share the figure.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use duroxide::provider_stress_tests::StressTestConfig;
use duroxide::provider_stress_tests::parallel_orchestrations::{
    ProviderStressFactory, run_parallel_orchestrations_test_with_config,
};
use duroxide::providers::Provider;
use duroxide::providers::sqlite::SqliteProvider;
use serde::{Deserialize, Serialize};

use super::stress_factory::{PostgresStressFactory, SchemaMode};
use crate::error::CoordinatorError;
use crate::plan::ProviderKind;

/// What the child runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StressJob {
    pub provider: ProviderKind,
    pub config: StressTestConfig,
}

/// What the child measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StressOutcome {
    pub launched: u64,
    pub completed: u64,
    pub failed: u64,
    /// As the module reports it (completed over its own elapsed time).
    pub orch_per_sec: f64,
    /// CPU seconds (user + system) the process used over the test.
    pub cpu_s: f64,
    pub wall_s: f64,
}

/// duroxide's SQLite provider in memory, one store per provider asked for.
struct SqliteMemoryFactory(StressTestConfig);

#[async_trait::async_trait]
impl ProviderStressFactory for SqliteMemoryFactory {
    /// The trait has no error path: a store that cannot be opened ends the
    /// child with the reason, which the bench reports.
    async fn create_provider(&self) -> Arc<dyn Provider> {
        match SqliteProvider::new_in_memory().await {
            Ok(p) => Arc::new(p),
            Err(e) => panic!("opening an in-memory SQLite store: {e}"),
        }
    }

    fn stress_test_config(&self) -> StressTestConfig {
        self.0.clone()
    }
}

/// Run `job` in this process (the child's side); `url` for Postgres.
pub async fn run_job(job: &StressJob, url: Option<&str>) -> Result<StressOutcome, CoordinatorError> {
    let config = job.config.clone();
    let cpu0 = loadgen_common::process::cpu_time();
    let t0 = Instant::now();
    let result = match job.provider {
        ProviderKind::Postgres => {
            let url =
                url.ok_or_else(|| CoordinatorError::Usage("the stress module on Postgres needs DATABASE_URL".into()))?;
            let factory = PostgresStressFactory::new(url, SchemaMode::Unique)
                .map_err(|e| CoordinatorError::Usage(e.to_string()))?
                .with_config(config.clone());
            let r = run_parallel_orchestrations_test_with_config(&factory, config).await;
            // Drop the schema whatever the outcome.
            factory.cleanup().await.map_err(CoordinatorError::Database)?;
            r
        }
        ProviderKind::SqliteMemory => {
            let factory = SqliteMemoryFactory(config.clone());
            run_parallel_orchestrations_test_with_config(&factory, config).await
        }
        ProviderKind::SqliteFile => {
            return Err(CoordinatorError::Usage(format!("the bench runs on {}", ProviderKind::benched_names())));
        }
    };
    let cpu = loadgen_common::process::cpu_time().saturating_sub(cpu0);
    let wall = t0.elapsed();
    let r = result.map_err(|e| CoordinatorError::Stress(format!("failed: {e}")))?;
    Ok(StressOutcome {
        launched: r.launched as u64,
        completed: r.completed as u64,
        failed: r.failed as u64,
        orch_per_sec: r.orch_throughput,
        cpu_s: cpu.as_secs_f64(),
        wall_s: wall.as_secs_f64(),
    })
}

/// Run `job` in a child process of `exe` (the bench's side). The child is
/// killed when this future is dropped (the bench interrupted) and after
/// `bound`; the database URL goes through its environment, never its
/// arguments.
pub async fn spawn(
    exe: &Path,
    job: &StressJob,
    url: Option<&str>,
    bound: Duration,
) -> Result<StressOutcome, CoordinatorError> {
    let text = serde_json::to_string(job).map_err(|e| CoordinatorError::Local(format!("stress job: {e}")))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("stress-module").arg("--job").arg(&text).kill_on_drop(true);
    cmd.env_remove("DATABASE_URL");
    if let Some(u) = url {
        cmd.env("DATABASE_URL", u);
    }
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| CoordinatorError::Local(format!("cannot start {} stress-module: {e}", exe.display())))?;
    let out = tokio::time::timeout(bound, child.wait_with_output())
        .await
        .map_err(|_| CoordinatorError::Stress(format!("did not finish within {bound:?}")))?
        .map_err(|e| CoordinatorError::Stress(format!("could not be waited for: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        let why = url.map_or(why.to_string(), |u| loadgen_common::secret::scrub(why, u));
        return Err(CoordinatorError::Stress(format!("exited with {}: {why}", out.status)));
    }
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).map_err(|e| CoordinatorError::Stress(format!("printed no result ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stress_module_runs_on_in_memory_sqlite_and_counts_its_cpu() {
        let job = StressJob {
            provider: ProviderKind::SqliteMemory,
            config: StressTestConfig {
                max_concurrent: 4,
                duration_secs: 1,
                tasks_per_instance: 2,
                activity_delay_ms: 1,
                orch_concurrency: 1,
                worker_concurrency: 1,
                wait_timeout_secs: 30,
            },
        };
        let o = run_job(&job, None).await.expect("runs");
        assert!(o.completed > 0 && o.completed == o.launched && o.failed == 0, "{o:?}");
        assert!(o.cpu_s > 0.0 && o.wall_s >= 1.0, "{o:?}");
        let back: StressJob = serde_json::from_str(&serde_json::to_string(&job).expect("json")).expect("parse");
        assert_eq!(back.provider, ProviderKind::SqliteMemory);
    }
}
