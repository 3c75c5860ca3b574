//! `coordinator bench`: duroxide's own stress module and this tool, side by
//! side, on one database.
//!
//! For each dispatcher setting it runs, `--repeat` times each (alternating
//! which goes first): duroxide's `parallel_orchestrations` stress test
//! through [`PostgresStressFactory`] (one runtime, every instance polled with
//! `wait_for_orchestration`), and this tool with one local agent on the same
//! workload (one runtime, batched completion tracking), called as a library
//! with a plan of its own. Both are measured the same way: orchestrations
//! per second as each reports it, and commits per completed orchestration
//! from `pg_stat_database` deltas taken around the whole run.
//!
//! The bench passes only when every run of both tools finished cleanly (this
//! tool's gates and audit; the stress module's failed count) and every
//! target the user set was met.
//!
//! - [`stress_factory`]: duroxide's stress module on duroxide-pg.

use std::path::PathBuf;
use std::time::Duration;

use duroxide::provider_stress_tests::StressTestConfig;
use duroxide::provider_stress_tests::parallel_orchestrations::run_parallel_orchestrations_test_with_config;
use loadgen_common::units::format_duration;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::db::embedded::EmbeddedPostgres;
use crate::error::CoordinatorError;
use crate::notice::{Notice, Observer, Silent};
use crate::plan::profile::{find_profile, parse_dispatchers};
use crate::plan::workload::{WorkloadOverrides, WorkloadPlan};
use crate::plan::{AgentSource, Database, Outputs, PlanError, RunPlan, Tracking};

pub mod stress_factory;

use stress_factory::{PostgresStressFactory, SchemaMode};

/// What `coordinator bench` measures.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub combos: Vec<String>,
    pub repeat: u32,
    pub duration: Duration,
    pub max_concurrent: u64,
    pub tasks: u32,
    pub activity_delay: Duration,
    pub database_url: Option<String>,
    /// This tool's completion-poll interval.
    pub completion_poll: Duration,
    pub agent_bin: PathBuf,
    /// Gate: this tool's median throughput at least this many times the module's, at every setting.
    pub min_throughput_ratio: Option<f64>,
}

/// One measured run of one tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub tool: String,
    pub dispatchers: String,
    pub completed: u64,
    pub orch_per_sec: f64,
    pub commits: u64,
    pub commits_per_orchestration: f64,
    /// Failed, unfinished or not as expected (0 for a clean run).
    #[serde(default)]
    pub failed: u64,
    /// Why the run does not count as clean (empty: it does).
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Per setting: both tools' samples and the ratios of their medians.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub dispatchers: String,
    pub theirs: Vec<Sample>,
    pub ours: Vec<Sample>,
    /// median ours / median theirs
    pub throughput_ratio: f64,
    /// median ours / median theirs
    pub commits_ratio: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub workload: String,
    pub repeat: u32,
    pub comparisons: Vec<Comparison>,
    /// The throughput target the user set, if any.
    #[serde(default)]
    pub min_throughput_ratio: Option<f64>,
    /// Every run clean and every target met.
    #[serde(default)]
    pub passed: bool,
    /// What failed, one line each.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// The median of `v` (0 for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

async fn commits(url: &str) -> Result<u64, CoordinatorError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| CoordinatorError::Database(loadgen_common::secret::scrub(&e.to_string(), url)))?;
    // Our own session's counters first, so the snapshot includes everything.
    let n: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| crate::db::db_err("reading pg_stat_database", e))?;
    let _ = conn.close().await;
    Ok(n.max(0) as u64)
}

/// Give backends that just exited a moment to flush their statistics.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn theirs(url: &str, plan: &BenchPlan, combo: &str) -> Result<Sample, CoordinatorError> {
    let (o, w) = parse_dispatchers(combo)?;
    let factory =
        PostgresStressFactory::new(url, SchemaMode::Unique).map_err(|e| CoordinatorError::Usage(e.to_string()))?;
    let config = StressTestConfig {
        max_concurrent: plan.max_concurrent as usize,
        duration_secs: plan.duration.as_secs().max(1),
        tasks_per_instance: plan.tasks as usize,
        activity_delay_ms: plan.activity_delay.as_millis() as u64,
        orch_concurrency: o as usize,
        worker_concurrency: w as usize,
        wait_timeout_secs: 60,
    };
    settle().await;
    let before = commits(url).await?;
    let result = run_parallel_orchestrations_test_with_config(&factory, config)
        .await
        .map_err(|e| CoordinatorError::Database(format!("duroxide stress module: {e}")))?;
    factory.cleanup().await.map_err(CoordinatorError::Database)?;
    settle().await;
    let used = commits(url).await?.saturating_sub(before);
    let completed = result.completed as u64;
    let failed = result.failed as u64 + result.launched.saturating_sub(result.completed + result.failed) as u64;
    let problems = if failed > 0 {
        vec![format!("{failed} of {} orchestrations failed or did not finish", result.launched)]
    } else {
        Vec::new()
    };
    Ok(Sample {
        tool: "duroxide stress module".into(),
        dispatchers: combo.into(),
        completed,
        orch_per_sec: result.orch_throughput,
        commits: used,
        commits_per_orchestration: if completed > 0 { used as f64 / completed as f64 } else { 0.0 },
        failed,
        problems,
    })
}

/// This tool's plan for one setting: the standard profile with the bench's workload.
fn our_plan(url: &str, plan: &BenchPlan, combo: &str) -> Result<RunPlan, PlanError> {
    let (o, w) = parse_dispatchers(combo)?;
    let mut profile = find_profile("standard")?;
    profile.orch_concurrency = o;
    profile.worker_concurrency = w;
    profile.duration = plan.duration;
    profile.max_concurrent = plan.max_concurrent;
    profile.tasks_per_instance = Some(plan.tasks);
    profile.activity_delay = Some(plan.activity_delay);
    profile.validate()?;
    let workload = WorkloadPlan::resolve(&profile, &WorkloadOverrides::default())?;
    Ok(RunPlan {
        runs: vec![profile.clone()],
        profile,
        workload,
        agents: AgentSource::Local { count: 1, bin: plan.agent_bin.clone(), token: loadgen_common::auth::new_token() },
        database: Database::Url(url.to_string()),
        outputs: Outputs::default(),
        tracking: Tracking::default(),
        completion_tracking: Default::default(),
        completion_poll: plan.completion_poll,
        on_agent_loss: Default::default(),
        faults: Default::default(),
        keep_schema: false,
        log: "warn,sqlx=error".into(),
    })
}

async fn ours(url: &str, plan: &BenchPlan, combo: &str) -> Result<Sample, CoordinatorError> {
    let run_plan = our_plan(url, plan, combo)?;
    settle().await;
    let before = commits(url).await?;
    let outcome = crate::run::run(&run_plan, &Silent, CancellationToken::new()).await?;
    settle().await;
    let used = commits(url).await?.saturating_sub(before);
    let report = outcome.runs.into_iter().next().ok_or_else(|| CoordinatorError::Usage("no run".into()))?;
    let c = &report.merged.counts;
    let problems: Vec<String> =
        report.gates.iter().filter(|g| !g.passed).map(|g| format!("gate {} failed: {}", g.name, g.value)).collect();
    Ok(Sample {
        tool: "loadgen (1 local agent)".into(),
        dispatchers: combo.into(),
        completed: c.completed,
        orch_per_sec: report.merged.orch_per_sec,
        commits: used,
        commits_per_orchestration: if c.completed > 0 { used as f64 / c.completed as f64 } else { 0.0 },
        failed: c.not_as_expected(),
        problems,
    })
}

/// Run the benchmark; progress goes to `obs`.
pub async fn bench(
    plan: &BenchPlan,
    obs: &dyn Observer,
    shutdown: CancellationToken,
) -> Result<BenchReport, CoordinatorError> {
    let mut embedded = None;
    let url = match &plan.database_url {
        Some(u) => u.clone(),
        None => {
            let pg = EmbeddedPostgres::start().await?;
            let url = pg.url().to_string();
            obs.notice(&Notice::DatabaseStarted {
                description: &format!("throwaway Postgres on 127.0.0.1:{}", pg.port()),
            });
            embedded = Some(pg);
            url
        }
    };
    let work = async {
        let mut comparisons = Vec::new();
        for combo in &plan.combos {
            let (mut t, mut o) = (Vec::new(), Vec::new());
            for rep in 1..=plan.repeat {
                // Alternate which tool goes first: the database carries the
                // previous run's dead rows and autovacuum work into the next.
                let order = if rep % 2 == 1 { [false, true] } else { [true, false] };
                for ours_turn in order {
                    let s = if ours_turn {
                        obs.notice(&Notice::Note(format!("[{combo} #{rep}] loadgen, 1 local agent...")));
                        ours(&url, plan, combo).await?
                    } else {
                        obs.notice(&Notice::Note(format!("[{combo} #{rep}] duroxide stress module...")));
                        theirs(&url, plan, combo).await?
                    };
                    obs.notice(&Notice::Note(format!(
                        "[{combo} #{rep}]   {:.2} orch/s, {:.1} commits/orch{}",
                        s.orch_per_sec,
                        s.commits_per_orchestration,
                        if s.problems.is_empty() { String::new() } else { format!(" — {}", s.problems.join("; ")) }
                    )));
                    if ours_turn { o.push(s) } else { t.push(s) }
                }
            }
            let m = |v: &[Sample], f: fn(&Sample) -> f64| median(v.iter().map(f).collect());
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            comparisons.push(Comparison {
                dispatchers: combo.clone(),
                throughput_ratio: ratio(m(&o, |s| s.orch_per_sec), m(&t, |s| s.orch_per_sec)),
                commits_ratio: ratio(m(&o, |s| s.commits_per_orchestration), m(&t, |s| s.commits_per_orchestration)),
                theirs: t,
                ours: o,
            });
        }
        Ok::<_, CoordinatorError>(comparisons)
    };
    let result = tokio::select! {
        r = work => r,
        _ = shutdown.cancelled() => Err(CoordinatorError::Interrupted),
    };
    if let Some(mut pg) = embedded {
        tokio::task::spawn_blocking(move || pg.stop()).await.ok();
    }
    let comparisons = result?;
    let problems = verdict(&comparisons, plan.min_throughput_ratio);
    Ok(BenchReport {
        workload: format!(
            "fanout {} x {}, {} in flight, {} per run",
            plan.tasks,
            format_duration(plan.activity_delay),
            plan.max_concurrent,
            format_duration(plan.duration)
        ),
        repeat: plan.repeat,
        comparisons,
        min_throughput_ratio: plan.min_throughput_ratio,
        passed: problems.is_empty(),
        problems,
    })
}

/// What fails the bench: an unclean run of either tool, a missed target.
fn verdict(comparisons: &[Comparison], min_ratio: Option<f64>) -> Vec<String> {
    let mut out = Vec::new();
    for c in comparisons {
        for (i, s) in c.ours.iter().chain(&c.theirs).enumerate() {
            if !s.problems.is_empty() {
                out.push(format!(
                    "{} {} run {}: {}",
                    c.dispatchers,
                    s.tool,
                    i % c.ours.len().max(1) + 1,
                    s.problems.join("; ")
                ));
            }
        }
        if let Some(min) = min_ratio
            && c.throughput_ratio < min
        {
            out.push(format!(
                "{}: throughput ratio x{:.2} is below the target x{min:.2}",
                c.dispatchers, c.throughput_ratio
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(orch: f64, problems: &[&str]) -> Sample {
        Sample {
            tool: "t".into(),
            dispatchers: "1:1".into(),
            completed: 10,
            orch_per_sec: orch,
            commits: 0,
            commits_per_orchestration: 0.0,
            failed: 0,
            problems: problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn unclean_runs_and_missed_targets_fail_the_bench() {
        let c = Comparison {
            dispatchers: "1:1".into(),
            theirs: vec![sample(10.0, &[])],
            ours: vec![sample(9.8, &[])],
            throughput_ratio: 0.98,
            commits_ratio: 0.5,
        };
        assert!(verdict(std::slice::from_ref(&c), None).is_empty());
        assert_eq!(
            verdict(std::slice::from_ref(&c), Some(1.0)),
            ["1:1: throughput ratio x0.98 is below the target x1.00"]
        );
        let bad = Comparison { ours: vec![sample(9.8, &["gate correctness audit failed: x"])], ..c };
        assert_eq!(verdict(&[bad], None).len(), 1);
    }
}
