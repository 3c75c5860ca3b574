//! `coordinator compare`: the same workload on several providers (duroxide's
//! SQLite provider, in memory or on a file, and duroxide-pg), per dispatcher
//! combination, repeated with the providers' order rotating each time, so
//! the ratio Postgres/SQLite the original plan promises ("local PostgreSQL
//! at 70-90% of SQLite in-memory throughput") is measured, not assumed.
//!
//! Each provider gets its own session (Postgres: the database and its local
//! agents; SQLite: one local agent with the store inside), all up for the
//! whole comparison; one provider's agents run at a time.

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ab::stats::median;
use crate::error::CoordinatorError;
use crate::model::compare::{CompareReport, CompareRow, CompareRun, ProviderCell};
use crate::model::{IntervalLogs, RunReport};
use crate::notice::{Notice, Observer};
use crate::plan::provider::{PROVIDERS, Role, StoreSite};
use crate::plan::{ProviderKind, RunPlan};
use crate::run::executor::with_sessions;
use crate::run::run_once;
use crate::run::session::Session;

/// A resolved comparison.
#[derive(Clone, Debug)]
pub struct ComparePlan {
    /// One run plan per provider (their `runs` are the dispatcher combinations).
    pub plans: Vec<RunPlan>,
    pub repeat: u32,
}

/// What a comparison produced.
#[derive(Debug)]
pub struct CompareOutcome {
    pub compare: CompareReport,
    pub runs: Vec<RunReport>,
    pub logs: Vec<IntervalLogs>,
}

/// Carry out the comparison.
pub async fn compare(
    plan: &ComparePlan,
    obs: &dyn Observer,
    shutdown: CancellationToken,
) -> Result<CompareOutcome, CoordinatorError> {
    let sessions: Vec<Session> = plan.plans.iter().map(|_| Session::default()).collect();
    with_sessions(sessions, obs, shutdown, async |s: &mut Vec<Session>| execute(plan, s, obs).await).await
}

/// The order of the providers in repetition `rep`: rotated by one each time.
pub fn order(providers: usize, rep: u32) -> Vec<usize> {
    (0..providers).map(|i| (i + rep as usize) % providers.max(1)).collect()
}

async fn execute(
    plan: &ComparePlan,
    sessions: &mut [Session],
    obs: &dyn Observer,
) -> Result<CompareOutcome, CoordinatorError> {
    for (s, p) in sessions.iter_mut().zip(&plan.plans) {
        s.open(p, &p.profile, obs).await?;
    }
    let combos = plan.plans.first().map_or(0, |p| p.runs.len());
    let total = combos * plan.plans.len() * plan.repeat as usize;
    let (mut runs, mut logs, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..plan.repeat {
        for c in 0..combos {
            for i in order(plan.plans.len(), rep) {
                let (Some(session), Some(run_plan)) = (sessions.get_mut(i), plan.plans.get(i)) else { continue };
                let Some(profile) = run_plan.runs.get(c) else { continue };
                let n = runs.len() + 1;
                let run_id = loadgen_common::schema::new_run_id();
                let label = format!("compare: {} at {}", run_plan.provider.as_str(), profile.dispatchers());
                let span = tracing::info_span!("compare run", n, provider = run_plan.provider.as_str(), run = %run_id);
                let (report, log) =
                    run_once(session, run_plan, profile, &run_id, (n, total, &label), obs).instrument(span).await?;
                session.end_run(obs).await;
                let row = CompareRun {
                    provider: run_plan.provider,
                    dispatchers: profile.dispatchers(),
                    figures: crate::model::RunFigures::of(&report, n),
                };
                obs.notice(&Notice::Note(format!(
                    "{} at {}: {:.1} orch/s, p99 {:.0} ms{}",
                    row.provider.as_str(),
                    row.dispatchers,
                    row.figures.orch_per_sec,
                    row.figures.p99_ms,
                    if row.figures.passed { "" } else { " (FAILED its gates)" }
                )));
                rows.push(row);
                runs.push(report);
                logs.extend(log);
            }
        }
    }
    let database = sessions
        .iter()
        .zip(&plan.plans)
        .find(|(_, p)| !p.provider.in_agent())
        .map(|(s, _)| s.database.clone())
        .unwrap_or_default();
    let local = sessions.iter().zip(&plan.plans).any(|(s, p)| !p.provider.in_agent() && is_local(&s.db_host));
    let compare = assemble(plan, database, local, rows);
    Ok(CompareOutcome { compare, runs, logs })
}

/// A database host label of this machine.
fn is_local(host: &str) -> bool {
    matches!(host, "embedded" | "localhost" | "127.0.0.1" | "::1") || host.starts_with("socket")
}

/// The report from every run.
pub fn assemble(plan: &ComparePlan, database: String, local_postgres: bool, runs: Vec<CompareRun>) -> CompareReport {
    let providers: Vec<ProviderKind> = plan.plans.iter().map(|p| p.provider).collect();
    let mut combos: Vec<String> = Vec::new();
    for r in &runs {
        if !combos.contains(&r.dispatchers) {
            combos.push(r.dispatchers.clone());
        }
    }
    let rows = combos
        .into_iter()
        .map(|d| {
            let cells: Vec<ProviderCell> = providers
                .iter()
                .map(|&p| {
                    let mine: Vec<&CompareRun> =
                        runs.iter().filter(|r| r.provider == p && r.dispatchers == d).collect();
                    let orch: Vec<f64> = mine.iter().map(|r| r.figures.orch_per_sec).collect();
                    ProviderCell {
                        provider: p,
                        min: orch.iter().copied().fold(f64::INFINITY, f64::min),
                        median: median(&orch),
                        max: orch.iter().copied().fold(0.0, f64::max),
                        p50_ms: median(&mine.iter().map(|r| r.figures.p50_ms).collect::<Vec<_>>()),
                        p99_ms: median(&mine.iter().map(|r| r.figures.p99_ms).collect::<Vec<_>>()),
                        orch_per_sec: orch,
                    }
                })
                .collect();
            // The system under test against a reference, in the registry's order.
            let of = |role: Role| {
                PROVIDERS
                    .iter()
                    .filter(|spec| spec.role == role)
                    .find_map(|spec| cells.iter().find(|c| c.provider == spec.kind).map(|c| c.median))
            };
            let ratio = match (of(Role::UnderTest), of(Role::Reference)) {
                (Some(pg), Some(sq)) if sq > 0.0 => Some(pg / sq),
                _ => None,
            };
            CompareRow { dispatchers: d, cells, ratio }
        })
        .collect();
    // The SPEC's expectation is for a server store against the in-memory reference.
    let has = |store: StoreSite| providers.iter().any(|p| p.spec().store == store);
    let expected = (has(StoreSite::Server) && has(StoreSite::AgentMemory))
        .then(|| if local_postgres { "70-90% (local Postgres)" } else { "20-40% (remote Postgres)" }.to_string());
    let problems: Vec<String> = runs
        .iter()
        .filter(|r| !r.figures.passed)
        .map(|r| {
            format!(
                "{} at {} (run {}, {}) failed its gates or audit",
                r.provider.as_str(),
                r.dispatchers,
                r.figures.order,
                r.figures.run_id
            )
        })
        .collect();
    CompareReport {
        profile: plan.plans.first().map(|p| p.profile.name.clone()).unwrap_or_default(),
        repeat: plan.repeat,
        providers,
        database,
        expected,
        rows,
        passed: problems.is_empty(),
        problems,
        runs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_rotates_each_repetition() {
        assert_eq!(order(2, 0), [0, 1]);
        assert_eq!(order(2, 1), [1, 0]);
        assert_eq!(order(3, 1), [1, 2, 0]);
    }
}
