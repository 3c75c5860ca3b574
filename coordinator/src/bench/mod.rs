//! `coordinator bench`: duroxide's own stress module and this tool, side by
//! side, on one provider (duroxide-pg, or duroxide's in-memory SQLite where
//! the database is not the limit and the generator's own cost shows).
//!
//! For each dispatcher setting it runs, `--repeat` times each (alternating
//! which goes first): duroxide's `parallel_orchestrations` stress test in a
//! process of its own ([`stress_child`]: one runtime, every instance polled
//! with `wait_for_orchestration`), and this tool with one local agent on the
//! same workload (one runtime, batched completion tracking), called as a
//! library with a plan of its own. Both are measured the same way:
//! orchestrations per second as each reports it; the CPU seconds of the
//! process that ran the runtime (the stress module's, the agent's) per 1,000
//! completed orchestrations, from `/proc`; on Postgres, commits per completed
//! orchestration from `pg_stat_database` deltas taken around the whole run.
//!
//! On in-memory SQLite it then finds the highest open-loop rate one agent
//! holds ([`ceiling`]), with the start lateness of each rate tried.
//!
//! The bench passes only when every run of both tools finished cleanly (this
//! tool's gates and audit; the stress module's failed count) and every
//! target the user set was met.
//!
//! - [`stress_factory`]: duroxide's stress module on duroxide-pg.
//! - [`stress_child`]: the stress module in a child process, measured.
//! - [`ceiling`]: the open-loop ceiling search.
//! - [`result`]: what it reports, and the ratios derived from the runs.

use std::path::PathBuf;
use std::time::Duration;

use duroxide::provider_stress_tests::StressTestConfig;
use loadgen_common::units::format_duration;
use tokio_util::sync::CancellationToken;

use crate::db::embedded::EmbeddedPostgres;
use crate::error::CoordinatorError;
use crate::notice::{Notice, Observer, Silent};
use crate::plan::profile::{find_profile, parse_dispatchers};
use crate::plan::provider::StoreSite;
use crate::plan::workload::{WorkloadOverrides, WorkloadPlan};
use crate::plan::{AgentSource, CompletionSource, Database, Outputs, PlanError, ProviderKind, RunPlan, Tracking};

pub mod ceiling;
pub mod result;
pub mod stress_child;
pub mod stress_factory;

pub use result::{BenchReport, Comparison, Sample, median};

use ceiling::Ceiling;
use stress_child::StressJob;

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
    /// This executable, which runs the stress module as a child (`stress-module`).
    pub stress_bin: PathBuf,
    /// `postgres` or `sqlite-memory`.
    pub provider: ProviderKind,
    /// Gate: this tool's median throughput at least this many times the module's, at every setting.
    pub min_throughput_ratio: Option<f64>,
    /// The load duration of each open-loop ceiling step (`None`: no search;
    /// only on in-memory SQLite).
    pub ceiling_step: Option<Duration>,
}

/// CPU seconds per 1,000 completed orchestrations (0 for none).
fn per_1000(cpu_s: f64, completed: u64) -> f64 {
    if completed > 0 { cpu_s * 1000.0 / completed as f64 } else { 0.0 }
}

async fn commits(url: &str) -> Result<u64, CoordinatorError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| crate::db::connect_err(url, e))?;
    // Our own session's counters first, so the snapshot includes everything.
    let n: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| crate::db::db_err("reading pg_stat_database", e))?;
    let _ = conn.close().await;
    Ok(n.max(0) as u64)
}

/// Carry out `work` and count the commits it cost on Postgres (`url`; 0 on
/// SQLite, which has no counter), read after the backends settle on both sides.
async fn with_commits<T>(
    url: Option<&str>,
    work: impl std::future::Future<Output = Result<T, CoordinatorError>>,
) -> Result<(T, u64), CoordinatorError> {
    let Some(u) = url else { return Ok((work.await?, 0)) };
    settle().await;
    let before = commits(u).await?;
    let out = work.await?;
    settle().await;
    Ok((out, commits(u).await?.saturating_sub(before)))
}

/// Give backends that just exited a moment to flush their statistics.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

async fn theirs(url: Option<&str>, plan: &BenchPlan, combo: &str) -> Result<Sample, CoordinatorError> {
    let (o, w) = parse_dispatchers(combo)?;
    let job = StressJob {
        provider: plan.provider,
        config: StressTestConfig {
            max_concurrent: plan.max_concurrent as usize,
            duration_secs: plan.duration.as_secs().max(1),
            tasks_per_instance: plan.tasks as usize,
            activity_delay_ms: plan.activity_delay.as_millis() as u64,
            orch_concurrency: o as usize,
            worker_concurrency: w as usize,
            wait_timeout_secs: 60,
        },
    };
    // Its load, its wait for the last instances (60 s at most), start-up and cleanup.
    let bound = plan.duration + Duration::from_secs(180);
    let (result, used) = with_commits(url, stress_child::spawn(&plan.stress_bin, &job, url, bound)).await?;
    let completed = result.completed;
    let failed = result.failed + result.launched.saturating_sub(result.completed + result.failed);
    let problems = if failed > 0 {
        vec![format!("{failed} of {} orchestrations failed or did not finish", result.launched)]
    } else {
        Vec::new()
    };
    Ok(Sample {
        tool: "duroxide stress module".into(),
        dispatchers: combo.into(),
        completed,
        orch_per_sec: result.orch_per_sec,
        commits: used,
        commits_per_orchestration: if completed > 0 { used as f64 / completed as f64 } else { 0.0 },
        cpu_s: result.cpu_s,
        cpu_per_1000: per_1000(result.cpu_s, completed),
        failed,
        problems,
    })
}

/// This tool's plan for one setting: the standard profile with the bench's workload.
fn our_plan(url: Option<&str>, plan: &BenchPlan, combo: &str) -> Result<RunPlan, PlanError> {
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
        agents: AgentSource::Local {
            count: 1,
            bin: plan.agent_bin.clone(),
            token: loadgen_common::auth::new_token(),
            env: Vec::new(),
        },
        // SQLite lives in the agent, which then tracks its own completions.
        database: url.map_or(Database::InAgent, |u| Database::Url(u.to_string())),
        outputs: Outputs::default(),
        tracking: Tracking::default(),
        completion_source: if url.is_some() { CompletionSource::default() } else { CompletionSource::Agent },
        completion_poll: plan.completion_poll,
        on_agent_loss: Default::default(),
        faults: Default::default(),
        keep_schema: false,
        agents_migrate: false,
        expect_build: None,
        agent_builds: Default::default(),
        provider: plan.provider,
        // duroxide's own retries (SQLite's table-lock conflicts) stay out of
        // the bench's console, as the stress module's child keeps its own.
        log: "warn,sqlx=error,duroxide=error".into(),
    })
}

async fn ours(url: Option<&str>, plan: &BenchPlan, combo: &str) -> Result<Sample, CoordinatorError> {
    let run_plan = our_plan(url, plan, combo)?;
    let (outcome, used) = with_commits(url, crate::run::run(&run_plan, &Silent, CancellationToken::new())).await?;
    let report = outcome
        .runs
        .into_iter()
        .next()
        .ok_or_else(|| CoordinatorError::Local("the bench run produced no report".into()))?;
    let c = &report.merged.counts;
    let cpu_s: f64 = report.agents.iter().map(|a| a.cpu_s).sum();
    let problems: Vec<String> =
        report.gates.iter().filter(|g| !g.passed).map(|g| format!("gate {} failed: {}", g.name, g.value)).collect();
    Ok(Sample {
        tool: "loadgen (1 local agent)".into(),
        dispatchers: combo.into(),
        completed: c.completed,
        orch_per_sec: report.merged.orch_per_sec,
        commits: used,
        commits_per_orchestration: if c.completed > 0 { used as f64 / c.completed as f64 } else { 0.0 },
        cpu_s,
        cpu_per_1000: per_1000(cpu_s, c.completed),
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
    let url = match (&plan.database_url, plan.provider) {
        (_, p) if p.in_agent() => None,
        (Some(u), _) => Some(u.clone()),
        (None, _) => {
            let pg = EmbeddedPostgres::start().await?;
            let url = pg.url().to_string();
            obs.notice(&Notice::DatabaseStarted {
                description: &format!("throwaway Postgres on 127.0.0.1:{}", pg.port()),
            });
            embedded = Some(pg);
            Some(url)
        }
    };
    let url = url.as_deref();
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
                        ours(url, plan, combo).await?
                    } else {
                        obs.notice(&Notice::Note(format!("[{combo} #{rep}] duroxide stress module...")));
                        theirs(url, plan, combo).await?
                    };
                    obs.notice(&Notice::Note(format!(
                        "[{combo} #{rep}]   {:.2} orch/s, {:.2} CPU s per 1,000{}{}",
                        s.orch_per_sec,
                        s.cpu_per_1000,
                        if url.is_some() {
                            format!(", {:.1} commits/orch", s.commits_per_orchestration)
                        } else {
                            String::new()
                        },
                        if s.problems.is_empty() { String::new() } else { format!(" — {}", s.problems.join("; ")) }
                    )));
                    if ours_turn { o.push(s) } else { t.push(s) }
                }
            }
            comparisons.push(Comparison::of(combo, t, o));
        }
        let ceiling = match (plan.ceiling_step, plan.combos.last()) {
            // The ceiling is read where the database is not the limit.
            (Some(step), Some(combo)) if plan.provider.spec().store == StoreSite::AgentMemory => {
                // From this tool's closed-loop throughput at the same setting.
                let start = comparisons
                    .last()
                    .map_or(10.0, |c: &Comparison| median(c.ours.iter().map(|s| s.orch_per_sec).collect()));
                let mut run_plan = our_plan(url, plan, combo)?;
                run_plan.profile.duration = step;
                run_plan.runs = vec![run_plan.profile.clone()];
                obs.notice(&Notice::Note(format!(
                    "[ceiling] the highest open-loop rate one agent holds at {combo}, from {start:.0}/s..."
                )));
                Some(ceiling::search(&run_plan, start, obs).await?)
            }
            _ => None,
        };
        Ok::<_, CoordinatorError>((comparisons, ceiling))
    };
    let result = tokio::select! {
        r = work => r,
        _ = shutdown.cancelled() => Err(CoordinatorError::Interrupted),
    };
    if let Some(mut pg) = embedded {
        tokio::task::spawn_blocking(move || pg.stop()).await.ok();
    }
    let (comparisons, ceiling) = result?;
    let mut problems = verdict(&comparisons, plan.min_throughput_ratio);
    if let Some(c) = &ceiling {
        problems.extend(ceiling_problems(c));
    }
    Ok(BenchReport {
        provider: plan.provider.as_str().into(),
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
        ceiling,
    })
}

/// What fails the bench in the ceiling search: a step whose audit failed or
/// that lost its agent (at any rate), or no rate held at all.
fn ceiling_problems(c: &Ceiling) -> Vec<String> {
    let mut out: Vec<String> = c
        .steps
        .iter()
        .filter(|s| !s.clean)
        .map(|s| format!("ceiling step {}/s: the audit failed or the agent was lost ({})", s.rate, s.why_not))
        .collect();
    if c.held_rate.is_none() {
        out.push(format!(
            "ceiling: no rate tried was held (lowest {}/s)",
            c.steps.iter().map(|s| s.rate).reduce(f64::min).unwrap_or(0.0)
        ));
    }
    out
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
    use crate::ab::stats::Verdict;

    fn sample(orch: f64, problems: &[&str]) -> Sample {
        Sample {
            tool: "t".into(),
            dispatchers: "1:1".into(),
            completed: 10,
            orch_per_sec: orch,
            commits: 0,
            commits_per_orchestration: 0.0,
            cpu_s: 0.0,
            cpu_per_1000: 0.0,
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
        let c = Comparison::of("1:1", vec![sample(10.0, &[])], vec![sample(9.8, &[])]);
        assert!(verdict(std::slice::from_ref(&c), None).is_empty());
        assert_eq!(
            verdict(std::slice::from_ref(&c), Some(1.0)),
            ["1:1: throughput ratio x0.98 is below the target x1.00"]
        );
        let bad = Comparison { ours: vec![sample(9.8, &["gate correctness audit failed: x"])], ..c };
        assert_eq!(verdict(&[bad], None).len(), 1);
    }

    #[test]
    fn the_throughput_ratio_gets_an_interval_and_a_verdict_from_three_runs_each() {
        let runs = |v: &[f64]| v.iter().map(|x| sample(*x, &[])).collect::<Vec<_>>();
        // One run each: a ratio, nothing more.
        let one = Comparison::of("4:4", runs(&[32.0]), runs(&[30.0]));
        assert_eq!((one.throughput_interval, one.throughput_verdict), (None, Verdict::Unknown));
        // Overlapping spreads, as on a shared machine: no difference called.
        let overlap = Comparison::of("4:4", runs(&[30.9, 28.9, 32.6, 32.3]), runs(&[30.0, 27.9, 30.8, 34.2]));
        let [low, high] = overlap.throughput_interval.expect("an interval");
        assert!(low < overlap.throughput_ratio && overlap.throughput_ratio < high && low < 1.0 && high > 1.0);
        assert_eq!(overlap.throughput_verdict, Verdict::NoSignificantDifference);
        // Separated: this tool's runs drove the runtime slower.
        let apart = Comparison::of("4:4", runs(&[36.0, 36.5, 37.0]), runs(&[32.0, 32.5, 33.0]));
        assert!(apart.throughput_interval.is_some_and(|[_, high]| high < 1.0));
        assert_eq!(apart.throughput_verdict, Verdict::Slower);
    }
}
