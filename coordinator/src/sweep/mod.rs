//! `coordinator sweep`: raise the offered load step by step (open-loop rate,
//! or closed-loop budget), each step a full run on a fresh schema with the
//! same agents and database, until the p99 SLO breaks, throughput stops
//! growing, a step fails its audit or loses an agent, or the database
//! degrades badly; then report the knee, the highest throughput sustained
//! within the SLO, Little's law as a cross-check, and a recommendation.
//!
//! The sweep passes when a step met the SLO and no step failed its audit or
//! lost an agent; its stop reason names what really stopped it.
//!
//! - [`recommend`]: the recommendation.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::CoordinatorError;
use crate::model::sweep::SweepMode;
use crate::model::{IntervalLogs, RunReport, SweepReport, SweepStep};
use crate::notice::{Notice, Observer};
use crate::plan::{Profile, RunPlan, slices};
use crate::run::executor::with_sessions;
use crate::run::run_once;
use crate::run::session::Session;

pub mod recommend;

/// A resolved sweep.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    /// What every step shares (its profile is the first step's).
    pub run: RunPlan,
    pub mode: SweepMode,
    /// The offered load of each step (rates or budgets), increasing.
    pub steps: Vec<f64>,
    pub slo_p99: Duration,
    /// Throughput has stopped growing below this gain, in percent.
    pub min_gain_pct: f64,
}

/// What a sweep produced.
#[derive(Debug)]
pub struct SweepOutcome {
    pub sweep: SweepReport,
    pub runs: Vec<RunReport>,
    pub logs: Vec<IntervalLogs>,
}

/// Carry out a sweep. Returns the sweep and every step's full run.
pub async fn sweep(
    plan: &SweepPlan,
    obs: &dyn Observer,
    shutdown: CancellationToken,
) -> Result<SweepOutcome, CoordinatorError> {
    with_sessions([Session::default()], obs, shutdown, async |[s]: &mut [Session; 1]| execute(plan, s, obs).await).await
}

/// The profile of one step.
fn step_profile(base: &Profile, mode: SweepMode, offered: f64) -> Profile {
    let mut p = base.clone();
    match mode {
        SweepMode::Rate => p.rate = Some(offered),
        SweepMode::Budget => {
            p.rate = None;
            p.max_concurrent = offered.round().max(1.0) as u64;
        }
    }
    p
}

async fn execute(
    plan: &SweepPlan,
    session: &mut Session,
    obs: &dyn Observer,
) -> Result<SweepOutcome, CoordinatorError> {
    let base = &plan.run.profile;
    let first = step_profile(base, plan.mode, plan.steps.first().copied().unwrap_or(1.0));
    session.open(&plan.run, &first, obs).await?;
    let agents = session.links.len();
    let slo_ms = plan.slo_p99.as_secs_f64() * 1000.0;
    let (mut runs, mut logs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    let mut problems = Vec::new();
    let mut stop_reason = format!("all {} steps ran", plan.steps.len());
    for (i, offered) in plan.steps.iter().copied().enumerate() {
        let profile = step_profile(base, plan.mode, offered);
        slices::check(&profile, agents)?;
        let run_id = loadgen_common::schema::new_run_id();
        let label = format!("sweep step: {}", plan.mode.describe(offered));
        let span = tracing::info_span!("sweep step", step = i + 1, run = %run_id);
        let (report, log) = run_once(session, &plan.run, &profile, &run_id, (i + 1, plan.steps.len(), &label), obs)
            .instrument(span)
            .await?;
        session.end_run(obs).await;
        let step = summarize(&report, offered, slo_ms);
        obs.notice(&Notice::Note(format!(
            "step {}: {} -> {:.1} orch/s, p99 {:.0} ms{}",
            i + 1,
            plan.mode.describe(offered),
            step.achieved_orch_per_sec,
            step.p99_ms,
            if step.within_slo { " (within the SLO)" } else { " (not within the SLO)" }
        )));
        let previous = out.last().map(|s: &SweepStep| s.achieved_orch_per_sec);
        let bad = degraded(&step, &report, slo_ms);
        let failed_run = failed_run(&step, &report);
        out.push(step.clone());
        runs.push(report);
        logs.extend(log);
        if let Some(why) = failed_run {
            problems.push(format!("step {} ({}): {why}", i + 1, plan.mode.describe(offered)));
            stop_reason = format!("stopped at step {}: {why}", i + 1);
            break;
        }
        if let Some(why) = bad {
            stop_reason = format!("stopped early at step {}: the database degraded badly ({why})", i + 1);
            break;
        }
        if let Some(why) = limit_reached(plan, i, offered, &step, previous, slo_ms) {
            stop_reason = why;
            break;
        }
    }
    // Every step met the SLO and throughput kept growing: the limit lies
    // beyond the last step, so there is no knee yet.
    let limit_found = out.iter().any(|s| !s.within_slo) || stop_reason.starts_with("throughput stopped");
    let knee = if limit_found { knee(&out) } else { None };
    let max_sustainable = out.iter().filter(|s| s.within_slo).map(|s| s.achieved_orch_per_sec).reduce(f64::max);
    let environment = runs.last().map(|r: &RunReport| r.environment.clone()).unwrap_or_default();
    if max_sustainable.is_none() {
        problems.push(format!("no step met p99 <= {slo_ms:.0} ms"));
    }
    let mut report = SweepReport {
        mode: plan.mode,
        slo_p99_ms: slo_ms,
        steps: out,
        knee,
        max_sustainable_orch_per_sec: max_sustainable,
        stop_reason,
        recommendation: Vec::new(),
        profile: crate::plan::ProfilePlan::resolve(base.clone())?,
        environment,
        agents,
        passed: problems.is_empty(),
        problems,
    };
    report.recommendation = recommend::recommend(&report, &runs);
    Ok(SweepOutcome { sweep: report, runs, logs })
}

/// Why the sweep ends at step `i` (0-based) because it found the limit:
/// the SLO broke, or throughput stopped growing over the step before.
fn limit_reached(
    plan: &SweepPlan,
    i: usize,
    offered: f64,
    step: &SweepStep,
    previous: Option<f64>,
    slo_ms: f64,
) -> Option<String> {
    if !step.within_slo {
        return Some(format!(
            "the SLO broke at step {} ({}: p99 {:.0} ms > {:.0} ms{})",
            i + 1,
            plan.mode.describe(offered),
            step.p99_ms,
            slo_ms,
            if step.failed + step.dropped > 0 {
                format!(", {} failed, {} dropped", step.failed, step.dropped)
            } else {
                String::new()
            }
        ));
    }
    let prev = previous?;
    (step.achieved_orch_per_sec < prev * (1.0 + plan.min_gain_pct / 100.0)).then(|| {
        format!(
            "throughput stopped growing at step {} ({:.1} -> {:.1} orch/s, less than +{}%)",
            i + 1,
            prev,
            step.achieved_orch_per_sec,
            plan.min_gain_pct
        )
    })
}

/// Why a step's run failed in a way that fails the sweep: its audit, or a lost agent.
fn failed_run(s: &SweepStep, r: &RunReport) -> Option<String> {
    if s.degraded {
        let lost: Vec<String> = r.lost_agents.iter().map(|l| format!("agent {} ({})", l.index, l.reason)).collect();
        return Some(format!("an agent was lost: {}", lost.join(", ")));
    }
    if !s.audit_passed {
        return Some(format!("the audit failed: {}", r.audit.problems.join("; ")));
    }
    None
}

/// The figures of one step from its run. Throughput is measured over the
/// load seconds (a drain after an overloaded step would flatter it). Little's
/// law: mean in flight = throughput x mean time in flight, where an
/// orchestration counts as in flight from its start call until the
/// generator sees it complete (the observed latency).
pub fn summarize(r: &RunReport, offered: f64, slo_ms: f64) -> SweepStep {
    let m = &r.merged;
    let lat = m.headline_latency();
    let load_s = r.profile.duration.as_secs_f64();
    let loaded: Vec<_> = r.timeline.merged.iter().filter(|p| p.t_s <= load_s + 0.5).collect();
    let mean_in_flight = if loaded.is_empty() {
        0.0
    } else {
        loaded.iter().map(|p| p.in_flight as f64).sum::<f64>() / loaded.len() as f64
    };
    let load_throughput = if loaded.is_empty() {
        m.orch_per_sec
    } else {
        loaded.iter().map(|p| p.completed).sum::<u64>() as f64 / loaded.last().map_or(load_s, |p| p.t_s).max(1e-3)
    };
    let db = &r.db_timeline;
    // Failures a scenario designs (the failures and cancellation scenarios,
    // the mixed profile) are not the database degrading: count what did not
    // end as expected, did not start, or did not finish.
    let failed = m.counts.not_as_expected() + m.counts.start_errors;
    let p99_ms = lat.p99_us as f64 / 1000.0;
    SweepStep {
        offered,
        achieved_orch_per_sec: load_throughput,
        p50_ms: lat.p50_us as f64 / 1000.0,
        p99_ms,
        max_ms: lat.max_us as f64 / 1000.0,
        mean_latency_ms: lat.mean_us / 1000.0,
        mean_in_flight,
        littles_law_in_flight: load_throughput * m.observed_latency.mean_us / 1e6,
        late: m.counts.late,
        dropped: m.counts.dropped,
        failed,
        deadlocks: db.iter().map(|s| s.deadlocks).sum(),
        rollbacks: r.db_load.rollbacks,
        commits_per_sec: if m.elapsed_s > 0.0 { r.db_load.commits as f64 / m.elapsed_s } else { 0.0 },
        peak_lock_waits: db.iter().map(|s| s.lock_waits).max().unwrap_or(0),
        within_slo: p99_ms <= slo_ms && failed == 0 && m.counts.dropped == 0 && r.audit.passed() && !r.degraded(),
        audit_passed: r.audit.passed(),
        degraded: r.degraded(),
        run_id: r.run_id.clone(),
    }
}

/// Why a step shows the database degrading badly (stop at once), if it does.
fn degraded(s: &SweepStep, r: &RunReport, slo_ms: f64) -> Option<String> {
    if s.failed > 0 {
        return Some(format!("{} orchestrations failed, did not start or did not finish", s.failed));
    }
    if s.p99_ms > 10.0 * slo_ms {
        return Some(format!("p99 {:.0} ms is more than ten times the SLO", s.p99_ms));
    }
    let commits = r.db_load.commits;
    if s.rollbacks > 100 && s.rollbacks * 10 > commits {
        return Some(format!("{} rollbacks against {commits} commits", s.rollbacks));
    }
    None
}

/// The knee: the last step within the SLO before the SLO broke or the
/// throughput stopped growing (the best step within the SLO).
pub fn knee(steps: &[SweepStep]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, s) in steps.iter().enumerate() {
        if !s.within_slo {
            break;
        }
        match best {
            Some(b) if s.achieved_orch_per_sec <= steps[b].achieved_orch_per_sec * 1.02 => {}
            _ => best = Some(i),
        }
    }
    best
}

/// Geometric steps from `start` by `factor`, `max` of them.
pub fn geometric(start: f64, factor: f64, max: u32) -> Vec<f64> {
    let mut out = Vec::new();
    let mut x = start;
    for _ in 0..max {
        out.push((x * 100.0).round() / 100.0);
        x *= factor;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(orch: f64, p99: f64, ok: bool) -> SweepStep {
        SweepStep { achieved_orch_per_sec: orch, p99_ms: p99, within_slo: ok, ..Default::default() }
    }

    #[test]
    fn the_knee_is_the_best_step_before_the_break() {
        assert_eq!(knee(&[step(10.0, 100.0, true), step(20.0, 150.0, true), step(25.0, 900.0, false)]), Some(1));
        // Throughput flat within the SLO: the first step that reached it.
        assert_eq!(knee(&[step(10.0, 100.0, true), step(20.0, 150.0, true), step(20.1, 160.0, true)]), Some(1));
        assert_eq!(knee(&[step(10.0, 900.0, false)]), None);
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn a_step_that_lost_an_agent_or_failed_its_audit_fails_the_sweep() {
        let mut r = RunReport::default();
        r.audit.problems.push("1 instance(s) differ".into());
        let s = summarize(&r, 10.0, 500.0);
        assert!(!s.within_slo && !s.audit_passed);
        assert!(failed_run(&s, &r).is_some_and(|w| w.starts_with("the audit failed: 1 instance(s) differ")));
        let mut lost = RunReport::default();
        lost.lost_agents.push(crate::model::LostAgent {
            index: 1,
            reason: "silent for 5.2s".into(),
            ..Default::default()
        });
        let s = summarize(&lost, 10.0, 500.0);
        assert_eq!(failed_run(&s, &lost).as_deref(), Some("an agent was lost: agent 1 (silent for 5.2s)"));
    }

    #[test]
    fn failures_by_design_do_not_stop_a_sweep_but_others_do() {
        let mut r = RunReport::default();
        let c = &mut r.merged.counts;
        (c.launched, c.completed, c.failed_application, c.expected_failures) = (100, 80, 20, 20);
        let s = summarize(&r, 10.0, 500.0);
        assert_eq!(s.failed, 0, "{s:?}");
        assert!(s.within_slo && degraded(&s, &r, 500.0).is_none(), "{s:?}");
        let c = &mut r.merged.counts;
        (c.failed_application, c.unfinished, c.start_errors) = (23, 2, 1);
        c.launched = 105;
        let s = summarize(&r, 10.0, 500.0);
        // 3 failed unexpectedly, 2 unfinished, 1 start error.
        assert_eq!(s.failed, 6, "{s:?}");
        assert!(!s.within_slo && degraded(&s, &r, 500.0).is_some());
    }

    #[test]
    fn geometric_steps() {
        assert_eq!(geometric(10.0, 2.0, 4), [10.0, 20.0, 40.0, 80.0]);
        assert_eq!(geometric(10.0, 1.5, 3), [10.0, 15.0, 22.5]);
    }
}
