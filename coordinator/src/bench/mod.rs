//! `coordinator bench`: duroxide's own stress module and this tool, side by
//! side, on one database.
//!
//! For each dispatcher setting it runs, `--repeat` times each (alternating
//! which goes first): duroxide's
//! `parallel_orchestrations` stress test through [`PostgresStressFactory`]
//! (one runtime, every instance polled with `wait_for_orchestration`), and
//! this tool with one local agent on the same workload (one runtime, batched
//! completion tracking). Both are measured the same way: orchestrations per
//! second as each reports it, and commits per completed orchestration from
//! `pg_stat_database` deltas taken around the whole run (pools closed first,
//! so every backend has flushed its counters).

use std::time::Duration;

use clap::Parser;
use duroxide::provider_stress_tests::StressTestConfig;
use duroxide::provider_stress_tests::parallel_orchestrations::run_parallel_orchestrations_test_with_config;
use loadgen_common::config::{format_duration, parse_dispatchers};
use loadgen_common::embedded_pg::EmbeddedPostgres;
use loadgen_common::stress_factory::{PostgresStressFactory, SchemaMode};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::error::CoordinatorError;

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
}

/// Per setting: both tools' samples and the ratios of their medians.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub dispatchers: String,
    pub theirs: Vec<Sample>,
    pub ours: Vec<Sample>,
    /// median ours / median theirs (target >= 1.0)
    pub throughput_ratio: f64,
    /// median ours / median theirs (target <= 0.7)
    pub commits_ratio: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub workload: String,
    pub repeat: u32,
    pub comparisons: Vec<Comparison>,
}

fn median(mut v: Vec<f64>) -> f64 {
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
    Ok(Sample {
        tool: "duroxide stress module".into(),
        dispatchers: combo.into(),
        completed,
        orch_per_sec: result.orch_throughput,
        commits: used,
        commits_per_orchestration: if completed > 0 { used as f64 / completed as f64 } else { 0.0 },
    })
}

async fn ours(url: &str, plan: &BenchPlan, combo: &str) -> Result<Sample, CoordinatorError> {
    let (o, w) = parse_dispatchers(combo)?;
    let argv = [
        "coordinator".to_string(),
        "--local".into(),
        "1".into(),
        "--profile".into(),
        "standard".into(),
        "--database-url".into(),
        url.into(),
        "--orch-concurrency".into(),
        o.to_string(),
        "--worker-concurrency".into(),
        w.to_string(),
        "--duration".into(),
        format_duration(plan.duration),
        "--max-concurrent".into(),
        plan.max_concurrent.to_string(),
        "--tasks".into(),
        plan.tasks.to_string(),
        "--activity-delay".into(),
        format_duration(plan.activity_delay),
        "--completion-poll".into(),
        format_duration(plan.completion_poll),
    ];
    let args = Cli::try_parse_from(argv).map_err(|e| CoordinatorError::Usage(e.to_string()))?.run;
    settle().await;
    let before = commits(url).await?;
    let outcome = crate::run::run(&args, CancellationToken::new()).await?;
    settle().await;
    let used = commits(url).await?.saturating_sub(before);
    let report = outcome.runs.into_iter().next().ok_or_else(|| CoordinatorError::Usage("no run".into()))?;
    let completed = report.merged.counts.completed;
    Ok(Sample {
        tool: "loadgen (1 local agent)".into(),
        dispatchers: combo.into(),
        completed,
        orch_per_sec: report.merged.orch_per_sec,
        commits: used,
        commits_per_orchestration: if completed > 0 { used as f64 / completed as f64 } else { 0.0 },
    })
}

/// Run the benchmark; progress goes to stderr.
pub async fn bench(plan: &BenchPlan, shutdown: CancellationToken) -> Result<BenchReport, CoordinatorError> {
    for c in &plan.combos {
        parse_dispatchers(c)?;
    }
    if plan.repeat == 0 {
        return Err(CoordinatorError::Usage("--repeat must be at least 1".into()));
    }
    let mut embedded = None;
    let url = match &plan.database_url {
        Some(u) => u.clone(),
        None => {
            let pg = EmbeddedPostgres::start().await?;
            let url = pg.url().to_string();
            eprintln!("bench on a throwaway Postgres on 127.0.0.1:{}", pg.port());
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
                        eprintln!("[{combo} #{rep}] loadgen, 1 local agent...");
                        ours(&url, plan, combo).await?
                    } else {
                        eprintln!("[{combo} #{rep}] duroxide stress module...");
                        theirs(&url, plan, combo).await?
                    };
                    eprintln!(
                        "[{combo} #{rep}]   {:.2} orch/s, {:.1} commits/orch",
                        s.orch_per_sec, s.commits_per_orchestration
                    );
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
    Ok(BenchReport {
        workload: format!(
            "fanout {} x {}, {} in flight, {} per run",
            plan.tasks,
            format_duration(plan.activity_delay),
            plan.max_concurrent,
            format_duration(plan.duration)
        ),
        repeat: plan.repeat,
        comparisons: result?,
    })
}

/// The comparison table.
pub fn render(r: &BenchReport, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(w, "\nSide by side, {} ({} run(s) per tool and setting; min / median / max):", r.workload, r.repeat)?;
    writeln!(
        w,
        "{:<8} {:<26} {:>26} {:>26} {:>14} {:>14}",
        "setting", "tool", "orch/s", "commits/orch", "orch/s ratio", "commits ratio"
    )?;
    let spread = |v: &[Sample], f: fn(&Sample) -> f64| {
        let xs: Vec<f64> = v.iter().map(f).collect();
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{min:.1} / {:.1} / {max:.1}", median(xs.clone()))
    };
    for c in &r.comparisons {
        writeln!(
            w,
            "{:<8} {:<26} {:>26} {:>26}",
            c.dispatchers,
            "duroxide stress module",
            spread(&c.theirs, |s| s.orch_per_sec),
            spread(&c.theirs, |s| s.commits_per_orchestration)
        )?;
        writeln!(
            w,
            "{:<8} {:<26} {:>26} {:>26} {:>14} {:>14}",
            "",
            "loadgen (1 agent)",
            spread(&c.ours, |s| s.orch_per_sec),
            spread(&c.ours, |s| s.commits_per_orchestration),
            format!("x{:.2}", c.throughput_ratio),
            format!("x{:.2}", c.commits_ratio)
        )?;
    }
    writeln!(w, "Targets: orch/s ratio >= 1.0 at every setting; commits ratio <= 0.7.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
