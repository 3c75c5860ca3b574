//! `coordinator matrix`: how a provider build meets each error class the
//! server can answer, and each timing fault. One short run per fault and
//! build, each on a fresh schema with one fault in its middle; per run, what
//! the fault did to the work (calls hit, the provider's own retries,
//! orchestrations failed by category, messages processed twice, work lost,
//! recovery) and a verdict: tolerated, fails work, duplicates work or loses
//! work. Builds are columns: a fault whose verdict differs between builds
//! is marked. The exit code covers every cell, against `--expect`.
//!
//! - [`plan`]: the rows (faults) and columns (builds), and `--expect`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use loadgen_common::schema::new_run_id;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::CoordinatorError;
use crate::faults::kinds::sqlstate::hits_of;
use crate::faults::{FaultSpec, Schedule};
use crate::model::matrix::{MatrixCell, MatrixReport, MatrixRow, Verdict};
use crate::model::timeline::Failures;
use crate::model::{IntervalLogs, RunReport};
use crate::notice::{Notice, Observer};
use crate::plan::{AgentSource, RunPlan};
use crate::run::executor;
use crate::run::session::Session;

pub mod plan;

/// One row: a fault, checked for the run.
#[derive(Clone, Debug)]
pub struct Row {
    /// How `--expect` and the table name it.
    pub fault: String,
    pub about: String,
    pub spec: FaultSpec,
    pub schedule: Schedule,
}

/// One column: a build of the agent.
#[derive(Clone, Debug)]
pub struct Build {
    pub label: String,
    /// Its agent binary (`None`: the plan's own agent).
    pub bin: Option<PathBuf>,
    /// The duroxide-pg release its agents must report.
    pub release: Option<String>,
}

/// A matrix: the run every cell shares (without faults), its rows and
/// columns, and the verdicts expected.
#[derive(Debug)]
pub struct MatrixPlan {
    pub run: RunPlan,
    pub rows: Vec<Row>,
    pub builds: Vec<Build>,
    pub expect: plan::Expect,
}

/// What a matrix found: the table, and every run in full.
#[derive(Debug)]
pub struct MatrixOutcome {
    pub matrix: MatrixReport,
    pub runs: Vec<RunReport>,
    pub logs: Vec<IntervalLogs>,
}

/// Run every row on every build, a session per build (its own database and
/// agents), every session closed on every path.
pub async fn matrix(
    plan: &MatrixPlan,
    obs: &dyn Observer,
    shutdown: CancellationToken,
) -> Result<MatrixOutcome, CoordinatorError> {
    let mut cells: Vec<Vec<MatrixCell>> = vec![Vec::new(); plan.rows.len()];
    let (mut runs, mut logs) = (Vec::new(), Vec::new());
    let mut database = String::new();
    for build in &plan.builds {
        let run = build_plan(&plan.run, build);
        let one = [Session::default()];
        let done = executor::with_sessions(one, obs, shutdown.clone(), async |[s]: &mut [Session; 1]| {
            s.open(&run, &run.profile, obs).await?;
            database = s.database.clone();
            let mut out = Vec::new();
            for (i, row) in plan.rows.iter().enumerate() {
                let (report, log) = one_row(s, &run, row, (i, plan.rows.len()), build, obs).await?;
                let cell = cell_of(&build.label, &report, plan.expect.verdict(&build.label, &row.fault));
                obs.notice(&Notice::Note(format!("matrix {}: {}: {}", build.label, row.fault, cell.verdict_text())));
                out.push((cell, report, log));
            }
            Ok(out)
        })
        .await?;
        for (i, (cell, report, log)) in done.into_iter().enumerate() {
            cells[i].push(cell);
            runs.push(report);
            logs.extend(log);
        }
    }
    let rows: Vec<MatrixRow> = plan
        .rows
        .iter()
        .zip(cells)
        .map(|(r, cells)| {
            let differs = cells.windows(2).any(|w| w[0].verdict != w[1].verdict);
            MatrixRow { fault: r.fault.clone(), about: r.about.clone(), cells, differs }
        })
        .collect();
    let passed = rows.iter().all(|r| r.cells.iter().all(MatrixCell::as_expected));
    let profile = &plan.run.profile;
    let first = plan.rows.first().map(|r| (r.spec.at, r.spec.length())).unwrap_or_default();
    let matrix = MatrixReport {
        profile: profile.name.clone(),
        duration_s: profile.duration.as_secs_f64(),
        fault_at_s: first.0.as_secs_f64(),
        fault_for_s: first.1.as_secs_f64(),
        database,
        builds: plan.builds.iter().map(|b| b.label.clone()).collect(),
        rows,
        passed,
    };
    Ok(MatrixOutcome { matrix, runs, logs })
}

/// The run plan of one build's column.
fn build_plan(base: &RunPlan, build: &Build) -> RunPlan {
    let mut run = base.clone();
    if let (Some(path), AgentSource::Local { bin, .. }) = (&build.bin, &mut run.agents) {
        *bin = path.clone();
        // Each build's agents migrate each schema with their own migrations.
        run.agents_migrate = true;
        run.expect_build = build.release.clone();
    }
    run
}

async fn one_row(
    session: &mut Session,
    run: &RunPlan,
    row: &Row,
    (i, n): (usize, usize),
    build: &Build,
    obs: &dyn Observer,
) -> Result<(RunReport, Option<IntervalLogs>), CoordinatorError> {
    let mut plan = run.clone();
    plan.faults = row.schedule.clone();
    let mut profile = plan.profile.clone();
    profile.faults = vec![row.spec.clone()];
    let run_id = new_run_id();
    let label = format!("matrix {}: {}", build.label, row.fault);
    let span = tracing::info_span!("run", run = %run_id);
    let done = crate::run::run_once(session, &plan, &profile, &run_id, (i + 1, n, &label), obs).instrument(span).await;
    session.end_run(obs).await;
    done
}

/// What one run says about its fault.
pub fn cell_of(build: &str, r: &RunReport, expected: Verdict) -> MatrixCell {
    let fault = r.faults.first();
    let detail = fault.map_or_else(String::new, |f| f.event.error.clone().unwrap_or_else(|| f.event.detail.clone()));
    // Only the sqlstate fault counts calls ("7 of 12 backends" are not calls).
    let counted = fault.filter(|f| f.event.kind == "sqlstate");
    let (hits, calls) = hits_of(counted.map_or("", |f| f.event.detail.as_str()));
    let retried = r.provider_errors.iter().filter(|(k, _)| k.contains("/retried")).map(|(_, n)| n).sum();
    let surfaced = r.provider_errors.iter().filter(|(k, _)| !k.contains("/retried")).map(|(_, n)| n).sum();
    let failed = Failures::of(&r.merged.counts);
    let failed_total =
        failed.infrastructure + failed.configuration + failed.application + failed.poison + failed.start_errors;
    let a = &r.audit;
    let lost = a.lost_acknowledged + a.not_terminal + a.orphaned;
    let verdict = if fault.is_some_and(|f| f.event.error.is_some()) || fault.is_none() {
        Verdict::NotApplied
    } else if lost > 0 {
        Verdict::LosesWork
    } else if a.processed_twice > 0 {
        Verdict::DuplicatesWork
    } else if failed_total > 0 {
        Verdict::FailsWork
    } else {
        Verdict::Tolerated
    };
    MatrixCell {
        build: build.to_string(),
        run_id: r.run_id.clone(),
        detail,
        hits,
        calls,
        retried,
        surfaced,
        failed,
        failed_total,
        processed_twice: a.processed_twice,
        lost,
        lost_acknowledged: a.lost_acknowledged,
        stuck: a.not_terminal,
        invisible: a.orphaned,
        recovery_s: fault.and_then(|f| f.recovery_s),
        verdict,
        expected,
        degraded: r.degraded(),
    }
}

/// The verdicts by build, for the summary line ("fails work 3, tolerated 9").
pub fn tally(m: &MatrixReport) -> BTreeMap<Verdict, usize> {
    let mut t = BTreeMap::new();
    for c in m.rows.iter().flat_map(|r| &r.cells) {
        *t.entry(c.verdict).or_default() += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_read_from_the_faults_own_words() {
        assert_eq!(hits_of("17 of 230 call(s) of ack_orchestration_item answered 57P01"), (Some(17), Some(230)));
        assert_eq!(hits_of("7 of 12 backends terminated"), (Some(7), Some(12)));
        assert_eq!(hits_of("the server paused for 3s"), (None, None));
    }

    #[test]
    fn the_worst_outcome_is_the_verdict() {
        let mut r = RunReport::default();
        r.faults.push(Default::default());
        r.faults[0].event.kind = "sqlstate".into();
        r.faults[0].event.detail = "3 of 15 call(s) of ack_worker answered 40001".into();
        assert_eq!(cell_of("b", &r, Verdict::Tolerated).hits, Some(3));
        r.faults[0].event.kind = "terminate-backends".into();
        assert_eq!(cell_of("b", &r, Verdict::Tolerated).hits, None);
        assert_eq!(cell_of("b", &r, Verdict::Tolerated).verdict, Verdict::Tolerated);
        r.merged.counts.failed_infrastructure = 3;
        assert_eq!(cell_of("b", &r, Verdict::Tolerated).verdict, Verdict::FailsWork);
        r.audit.processed_twice = 1;
        assert_eq!(cell_of("b", &r, Verdict::Tolerated).verdict, Verdict::DuplicatesWork);
        r.audit.orphaned = 2;
        let c = cell_of("b", &r, Verdict::LosesWork);
        assert_eq!((c.verdict, c.lost, c.invisible), (Verdict::LosesWork, 2, 2));
        assert!(c.as_expected());
        r.faults[0].event.error = Some("no such procedure".into());
        assert_eq!(cell_of("b", &r, Verdict::Tolerated).verdict, Verdict::NotApplied);
        r.provider_errors.insert("ack_orchestration_item/retried: deadlock".into(), 4);
        r.provider_errors.insert("ack_orchestration_item/other".into(), 2);
        let c = cell_of("b", &r, Verdict::Tolerated);
        assert_eq!((c.retried, c.surfaced), (4, 2));
    }
}
