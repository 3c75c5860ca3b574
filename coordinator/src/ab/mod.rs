//! `coordinator ab`: did a change make the provider slower? The same
//! profile run alternately with local agents from two agent binaries (a
//! baseline build and a candidate build), on one database, each run on a
//! fresh schema that *its* build's provider migrates (a candidate with new
//! migrations works). Per metric, the candidate's median over the
//! baseline's with a 95% bootstrap interval, and a verdict ([`stats`]).
//!
//! The order alternates in pairs (B C, C B, B C, ...), so a drift of the
//! shared machine over the comparison (a warming cache, a neighbour's load)
//! falls on both builds alike. Both builds' agents stay up for the whole
//! comparison; only one build's agents run at a time.
//!
//! - [`stats`]: the ratio of medians, its interval and the verdict.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::CoordinatorError;
use crate::model::ab::{AbMetric, AbReport, AbRun, Build, BuildInfo, Verdict};
use crate::model::{IntervalLogs, RunReport};
use crate::notice::{Notice, Observer};
use crate::plan::{AgentSource, Database, RunPlan};
use crate::run::executor::with_sessions;
use crate::run::run_once;
use crate::run::session::Session;

pub mod stats;

use stats::{Better, ratio_of_medians_at, verdict};

/// One build's agents.
#[derive(Clone, Debug)]
pub struct Variant {
    pub bin: PathBuf,
    /// Extra environment for its agent processes.
    pub env: Vec<(String, String)>,
}

/// A resolved A/B comparison.
#[derive(Clone, Debug)]
pub struct AbPlan {
    /// What every run shares (agents: local, `count` of them).
    pub run: RunPlan,
    pub baseline: Variant,
    pub candidate: Variant,
    /// Runs per build.
    pub repeat: u32,
    /// Smallest change called faster or slower (a fraction).
    pub min_effect: f64,
}

/// What a comparison produced.
#[derive(Debug)]
pub struct AbOutcome {
    pub ab: AbReport,
    pub runs: Vec<RunReport>,
    pub logs: Vec<IntervalLogs>,
}

impl AbPlan {
    /// The run plan of one build: its agents, migrating their own schemas.
    fn for_build(&self, v: &Variant, database: Database) -> RunPlan {
        let mut plan = self.run.clone();
        if let AgentSource::Local { count, token, .. } = &self.run.agents {
            plan.agents =
                AgentSource::Local { count: *count, bin: v.bin.clone(), token: token.clone(), env: v.env.clone() };
        }
        plan.database = database;
        plan.agents_migrate = true;
        plan
    }
}

/// Functions that are not the provider's work under load: the database
/// sampler's queue depths, and the gauge poll each runtime makes once at
/// start (the agents set its interval to a day).
const GENERATOR_FUNCTIONS: [&str; 2] = ["get_queue_depths", "get_system_metrics"];

/// The order of the runs: pairs that alternate which build goes first.
pub fn order(repeat: u32) -> Vec<Build> {
    (0..repeat)
        .flat_map(
            |r| {
                if r % 2 == 0 { [Build::Baseline, Build::Candidate] } else { [Build::Candidate, Build::Baseline] }
            },
        )
        .collect()
}

/// Carry out the comparison.
pub async fn ab(plan: &AbPlan, obs: &dyn Observer, shutdown: CancellationToken) -> Result<AbOutcome, CoordinatorError> {
    // The candidate's session uses the baseline's database: the executor
    // closes it first (the last opened).
    let two = [Session::default(), Session::default()];
    with_sessions(two, obs, shutdown, async |[base, cand]: &mut [Session; 2]| execute(plan, base, cand, obs).await)
        .await
}

async fn execute(
    plan: &AbPlan,
    base: &mut Session,
    cand: &mut Session,
    obs: &dyn Observer,
) -> Result<AbOutcome, CoordinatorError> {
    let profile = &plan.run.profile;
    let base_plan = plan.for_build(&plan.baseline, plan.run.database.clone());
    base.open(&base_plan, profile, obs).await?;
    let cand_plan = plan.for_build(&plan.candidate, Database::Url(base.url.clone()));
    cand.open(&cand_plan, profile, obs).await?;
    // The candidate reaches the same database: name it the same way.
    cand.database = base.database.clone();
    cand.db_host = base.db_host.clone();
    let info = |s: &Session, v: &Variant| {
        let hello = s.links.first().map(|l| l.hello.clone()).unwrap_or_default();
        BuildInfo {
            agent: v.bin.display().to_string(),
            env: v.env.iter().map(|(k, val)| format!("{k}={val}")).collect(),
            duroxide_version: hello.duroxide_version,
            duroxide_pg_version: hello.duroxide_pg_version,
        }
    };
    let (baseline, candidate) = (info(base, &plan.baseline), info(cand, &plan.candidate));
    let builds = order(plan.repeat);
    let (mut runs, mut logs, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for (i, build) in builds.iter().copied().enumerate() {
        let (session, run_plan) = match build {
            Build::Baseline => (&mut *base, &base_plan),
            Build::Candidate => (&mut *cand, &cand_plan),
        };
        let run_id = loadgen_common::schema::new_run_id();
        let label = format!("A/B: {}", build.as_str());
        let span = tracing::info_span!("ab run", n = i + 1, build = build.as_str(), run = %run_id);
        let (report, log) =
            run_once(session, run_plan, profile, &run_id, (i + 1, builds.len(), &label), obs).instrument(span).await?;
        session.end_run(obs).await;
        let row = summarize(&report, build, i + 1);
        obs.notice(&Notice::Note(format!(
            "{} run {}: {:.1} orch/s, p99 {:.0} ms{}",
            build.as_str(),
            i + 1,
            row.figures.orch_per_sec,
            row.figures.p99_ms,
            if row.figures.passed { "" } else { " (FAILED its gates)" }
        )));
        rows.push(row);
        runs.push(report);
        logs.extend(log);
    }
    let ab = assemble(plan, baseline, candidate, &rows, &runs);
    Ok(AbOutcome { ab, runs, logs })
}

fn summarize(r: &RunReport, build: Build, order: usize) -> AbRun {
    AbRun { build, figures: crate::model::RunFigures::of(r, order) }
}

/// Orchestrations a run must complete for its p99 to get a verdict.
pub const P99_SAMPLES: u64 = 1000;

/// One metric from each build's values, with a `1 - alpha` interval.
fn metric(name: &str, better: Better, base: Vec<f64>, cand: Vec<f64>, min_effect: f64, alpha: f64) -> AbMetric {
    // Fixed seed: the same runs give the same intervals.
    const SEED: u64 = 0x005E_EDAB;
    let e = ratio_of_medians_at(&base, &cand, SEED, alpha);
    AbMetric {
        name: name.to_string(),
        better: match better {
            Better::Higher => "higher".into(),
            Better::Lower => "lower".into(),
        },
        baseline_median: stats::median(&base),
        candidate_median: stats::median(&cand),
        baseline: base,
        candidate: cand,
        ratio: e.map(|e| e.ratio),
        low: e.map(|e| e.low),
        high: e.map(|e| e.high),
        verdict: verdict(e, better, min_effect),
    }
}

/// The report from every run.
pub fn assemble(
    plan: &AbPlan,
    baseline: BuildInfo,
    candidate: BuildInfo,
    rows: &[AbRun],
    runs: &[RunReport],
) -> AbReport {
    let of = |b: Build, f: fn(&AbRun) -> f64| rows.iter().filter(|r| r.build == b).map(f).collect::<Vec<f64>>();
    let m = |name: &str, better: Better, f: fn(&AbRun) -> f64| {
        metric(name, better, of(Build::Baseline, f), of(Build::Candidate, f), plan.min_effect, 0.05)
    };
    let metrics = vec![
        m("orch/s", Better::Higher, |r| r.figures.orch_per_sec),
        m("p50 ms", Better::Lower, |r| r.figures.p50_ms),
        m("p99 ms", Better::Lower, |r| r.figures.p99_ms),
        m("commits/orchestration", Better::Lower, |r| r.figures.commits_per_orchestration),
    ];
    let problems: Vec<String> = rows
        .iter()
        .zip(runs)
        .filter(|(row, _)| !row.figures.passed)
        .map(|(row, r)| {
            let failed: Vec<&str> = r.gates.iter().filter(|g| !g.passed).map(|g| g.name.as_str()).collect();
            let why = if r.degraded() { "lost an agent".to_string() } else { format!("failed {}", failed.join(", ")) };
            format!("{} run {} ({}): {why}", row.build.as_str(), row.figures.order, row.figures.run_id)
        })
        .collect();
    let mut metrics = metrics;
    let mut notes: Vec<String> = Vec::new();
    // A p99 of a few hundred orchestrations is its worst two or three: runs
    // that short move it by a quarter between copies of one binary (seen).
    let fewest = runs.iter().map(|r| r.merged.headline_latency().count).min().unwrap_or(0);
    if fewest < P99_SAMPLES {
        if let Some(p99) = metrics.iter_mut().find(|m| m.name == "p99 ms") {
            p99.verdict = Verdict::Unknown;
        }
        notes.push(format!(
            "p99: no verdict, the shortest run completed {fewest} orchestrations (a p99 needs {P99_SAMPLES} or more per run to rest on more than its worst few; run longer)"
        ));
    }
    for (row, r) in rows.iter().zip(runs) {
        for w in &r.warnings {
            // Schema names differ run by run: one note per build and text.
            let text = format!("{}: {}", row.build.as_str(), w.replace(&r.schema, "<schema>"));
            if !notes.contains(&text) {
                notes.push(text);
            }
        }
    }
    AbReport {
        notes,
        profile: plan.run.profile.name.clone(),
        repeat: plan.repeat,
        min_effect_pct: plan.min_effect * 100.0,
        baseline,
        candidate,
        metrics,
        procedures: procedures(rows, runs, plan.min_effect),
        runs: rows.to_vec(),
        passed: problems.is_empty(),
        problems,
    }
}

/// Per stored procedure of the provider seen in every run: mean
/// milliseconds per call and calls per completed orchestration, each as a
/// metric. These are many metrics judged at once, so their intervals are
/// Bonferroni-widened (95% for the family): without it, 3 + 3 runs of two
/// identical builds would call about one procedure in twenty different.
fn procedures(rows: &[AbRun], runs: &[RunReport], min_effect: f64) -> Vec<AbMetric> {
    let mut names: Vec<String> = runs
        .iter()
        .filter_map(|r| r.procedures.as_ref())
        .flat_map(|p| p.functions.iter().map(|f| f.name.clone()))
        .filter(|n| !GENERATOR_FUNCTIONS.contains(&n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    let alpha = 0.05 / (2 * names.len()).max(1) as f64;
    let value = |r: &RunReport, name: &str, per_call: bool| -> Option<f64> {
        let f = r.procedures.as_ref()?.functions.iter().find(|f| f.name == name)?;
        if per_call {
            Some(f.mean_ms)
        } else {
            let done = r.merged.counts.completed;
            (done > 0).then(|| f.calls as f64 / done as f64)
        }
    };
    let mut out = Vec::new();
    for name in &names {
        for (per_call, label, better) in
            [(true, "mean ms", Better::Lower), (false, "calls/orchestration", Better::Lower)]
        {
            let side = |b: Build| -> Option<Vec<f64>> {
                rows.iter().zip(runs).filter(|(row, _)| row.build == b).map(|(_, r)| value(r, name, per_call)).collect()
            };
            if let (Some(base), Some(cand)) = (side(Build::Baseline), side(Build::Candidate)) {
                out.push(metric(&format!("{name} {label}"), better, base, cand, min_effect, alpha));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_alternate_in_pairs() {
        use Build::{Baseline as B, Candidate as C};
        assert_eq!(order(3), vec![B, C, C, B, B, C]);
        assert_eq!(order(1), vec![B, C]);
    }
}
