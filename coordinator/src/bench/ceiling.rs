//! The generator's own ceiling: the highest open-loop rate one agent holds
//! on in-memory SQLite, where the database is not the limit.
//!
//! Each step is an open-loop run at one rate (constant arrivals) with one
//! local agent, kept up between steps. A rate is *held* when under 1% of its
//! starts began late (more than `LATE_AFTER_MS` after their intended time),
//! none was dropped at the in-flight cap, every instance ended as expected,
//! and completions kept pace with the starts (at least 90% of the offered
//! rate over the last two thirds of the load, after the first completions
//! have had time to arrive): starts issued on time into a growing backlog
//! are not a rate the agent holds. The search starts from the
//! closed-loop throughput of the same setting, multiplies by 1.5 while the
//! rate holds, halves while it does not, then bisects between the highest
//! held and the lowest lost rate until they are within 15%, in at most
//! [`MAX_STEPS`] runs.

use loadgen_common::histogram::LatencySummary;
use serde::{Deserialize, Serialize};

use crate::error::CoordinatorError;
use crate::model::RunReport;
use crate::notice::{Notice, Observer};
use crate::plan::RunPlan;
use crate::run::executor::with_sessions;
use crate::run::run_once;
use crate::run::session::Session;

/// A rate holds with fewer late starts than this share, in percent.
pub const LATE_LIMIT_PCT: f64 = 1.0;
/// Completions over the load seconds at least this share of the offered rate.
const KEPT_PACE: f64 = 0.9;
/// Runs in one search, at most.
pub const MAX_STEPS: usize = 8;
/// The search stops when the lost rate is within this factor of the held one.
const CLOSE_ENOUGH: f64 = 1.15;

/// One rate tried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CeilingStep {
    pub rate: f64,
    /// Completions per second over the last two thirds of the load.
    pub achieved_orch_per_sec: f64,
    pub launched: u64,
    pub late: u64,
    pub late_pct: f64,
    pub dropped: u64,
    /// How late the starts began (actual minus intended start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness: Option<LatencySummary>,
    /// The agent's CPU seconds over the run.
    pub agent_cpu_s: f64,
    pub held: bool,
    /// The run's per-instance audit passed and no agent was lost: a step
    /// that fails them fails the bench, held or not.
    #[serde(default)]
    pub clean: bool,
    /// Why the rate was not held (empty when it was).
    #[serde(default)]
    pub why_not: String,
}

/// The search and its answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    pub provider: String,
    pub dispatchers: String,
    pub late_limit_pct: f64,
    /// The highest rate held (none: not even the lowest tried).
    pub held_rate: Option<f64>,
    /// The start lateness of the run at that rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lateness: Option<LatencySummary>,
    pub steps: Vec<CeilingStep>,
}

impl Ceiling {
    /// What stopped the search from going higher, for people: the
    /// generator's own starts (late or dropped), or only the runtime's
    /// completions (the generator kept its schedule at every rate tried).
    pub fn limited_by(&self) -> &'static str {
        let lost: Vec<&CeilingStep> = self.steps.iter().filter(|s| !s.held).collect();
        if lost.is_empty() {
            "nothing yet: every rate tried was held"
        } else if lost.iter().all(|s| s.late_pct < self.late_limit_pct && s.dropped == 0) {
            "the runtime's completions, not the generator: every rate tried was started on time"
        } else {
            "the generator's starts: a higher rate began late or dropped starts"
        }
    }
}

/// The next rate to try after `tried` (rate, held), starting at `start`;
/// `None` when the search is done.
pub fn next_rate(start: f64, tried: &[(f64, bool)]) -> Option<f64> {
    if tried.len() >= MAX_STEPS {
        return None;
    }
    let start = start.round().max(1.0);
    if tried.is_empty() {
        return Some(start);
    }
    let held = tried.iter().filter(|(_, h)| *h).map(|(r, _)| *r).reduce(f64::max);
    let lost = tried.iter().filter(|(r, h)| !*h && held.is_none_or(|lo| *r > lo)).map(|(r, _)| *r).reduce(f64::min);
    let next = match (held, lost) {
        (Some(lo), None) => (lo * 1.5).round(),
        (None, Some(hi)) if hi <= 1.0 => return None,
        (None, Some(hi)) => (hi * 0.5).round().max(1.0),
        (Some(lo), Some(hi)) if hi <= lo * CLOSE_ENOUGH || hi - lo <= 1.0 => return None,
        (Some(lo), Some(hi)) => (lo * hi).sqrt().round(),
        (None, None) => return None,
    };
    (!tried.iter().any(|(r, _)| *r == next)).then_some(next)
}

/// Completions per second over the last two thirds of the load (the first
/// third holds the wait for the first completions: with 300 ms latency a
/// 3 s run completes 10% less than it starts even when it keeps pace), or
/// over the whole load when the run has too few seconds for that.
fn pace(r: &RunReport) -> f64 {
    let load_s = r.profile.duration.as_secs_f64();
    let from = (load_s / 3.0).max(1.0);
    let tail: Vec<_> = r.timeline.merged.iter().filter(|p| p.t_s > from + 0.5 && p.t_s <= load_s + 0.5).collect();
    match (tail.first(), tail.last()) {
        (Some(first), Some(last)) if tail.len() >= 2 => {
            let span = last.t_s - (first.t_s - 1.0);
            tail.iter().map(|p| p.completed).sum::<u64>() as f64 / span.max(1e-3)
        }
        _ => crate::sweep::summarize(r, 0.0, f64::INFINITY).achieved_orch_per_sec,
    }
}

/// The figures of one step from its run.
pub fn judge(r: &RunReport, rate: f64) -> CeilingStep {
    let m = &r.merged;
    let c = &m.counts;
    let achieved = pace(r);
    let late_pct = if c.launched > 0 { c.late as f64 * 100.0 / c.launched as f64 } else { 0.0 };
    let mut why = Vec::new();
    if c.launched == 0 {
        why.push("nothing started".to_string());
    }
    if late_pct >= LATE_LIMIT_PCT {
        why.push(format!("{late_pct:.1}% of starts late"));
    }
    if c.dropped > 0 {
        why.push(format!("{} starts dropped at the in-flight cap", c.dropped));
    }
    let failed = c.not_as_expected() + c.start_errors;
    if failed > 0 || !r.audit.passed() || r.degraded() {
        // The audit's own words, so a reader (and the suite) can tell a lost
        // start in the store from a failed instance.
        let audit = if r.audit.passed() { String::new() } else { format!(" (audit: {})", r.audit.problems.join("; ")) };
        why.push(format!("{failed} instances did not end as expected{audit}"));
    }
    if achieved < KEPT_PACE * rate {
        why.push(format!("completions {achieved:.1}/s fell behind"));
    }
    CeilingStep {
        rate,
        achieved_orch_per_sec: achieved,
        launched: c.launched,
        late: c.late,
        late_pct,
        dropped: c.dropped,
        lateness: m.start_lateness.clone(),
        agent_cpu_s: r.agents.iter().map(|a| a.cpu_s).sum(),
        held: why.is_empty(),
        clean: r.audit.passed() && !r.degraded(),
        why_not: why.join(", "),
    }
}

/// Search from `start` (orch/s) with `plan` (one local agent; its profile's
/// rate is set per step).
pub async fn search(plan: &RunPlan, start: f64, obs: &dyn Observer) -> Result<Ceiling, CoordinatorError> {
    // Interruption is the bench's (it races the whole bench against it).
    let never = tokio_util::sync::CancellationToken::new();
    let one = [Session::default()];
    let steps = with_sessions(one, obs, never, async |[s]: &mut [Session; 1]| steps(plan, start, s, obs).await).await?;
    let best = steps.iter().filter(|s| s.held).max_by(|a, b| a.rate.total_cmp(&b.rate));
    Ok(Ceiling {
        provider: plan.provider.as_str().into(),
        dispatchers: plan.profile.dispatchers(),
        late_limit_pct: LATE_LIMIT_PCT,
        held_rate: best.map(|s| s.rate),
        lateness: best.and_then(|s| s.lateness.clone()),
        steps,
    })
}

async fn steps(
    plan: &RunPlan,
    start: f64,
    session: &mut Session,
    obs: &dyn Observer,
) -> Result<Vec<CeilingStep>, CoordinatorError> {
    let mut out: Vec<CeilingStep> = Vec::new();
    let mut tried = Vec::new();
    while let Some(rate) = next_rate(start, &tried) {
        let mut profile = plan.profile.clone();
        profile.rate = Some(rate);
        if out.is_empty() {
            session.open(plan, &profile, obs).await?;
        }
        let run_id = loadgen_common::schema::new_run_id();
        let label = format!("open-loop ceiling: {rate}/s");
        let (report, _) = run_once(session, plan, &profile, &run_id, (out.len() + 1, MAX_STEPS, &label), obs).await?;
        session.end_run(obs).await;
        let step = judge(&report, rate);
        obs.notice(&Notice::Note(format!(
            "[ceiling] {rate}/s: {:.1} orch/s, {} of {} starts late ({:.2}%), lateness p99 {}: {}",
            step.achieved_orch_per_sec,
            step.late,
            step.launched,
            step.late_pct,
            step.lateness.as_ref().map_or("-".into(), |l| loadgen_common::units::format_latency_us(l.p99_us)),
            if step.held { "held".to_string() } else { format!("not held ({})", step.why_not) }
        )));
        tried.push((rate, step.held));
        out.push(step);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_climbs_then_bisects_and_stops() {
        assert_eq!(next_rate(40.2, &[]), Some(40.0));
        assert_eq!(next_rate(40.0, &[(40.0, true)]), Some(60.0));
        assert_eq!(next_rate(40.0, &[(40.0, true), (60.0, true), (90.0, false)]), Some(73.0));
        // Within 15% of each other: done.
        assert_eq!(next_rate(40.0, &[(40.0, true), (60.0, true), (90.0, false), (73.0, true), (81.0, true)]), None);
        // Lost at the start: halve until one holds.
        assert_eq!(next_rate(40.0, &[(40.0, false)]), Some(20.0));
        assert_eq!(next_rate(40.0, &[(40.0, false), (20.0, true)]), Some(28.0));
        assert_eq!(next_rate(1.0, &[(1.0, false)]), None);
        // Never more than MAX_STEPS runs.
        let many: Vec<(f64, bool)> = (1..=MAX_STEPS).map(|i| (i as f64 * 10.0, true)).collect();
        assert_eq!(next_rate(10.0, &many), None);
    }

    #[test]
    fn a_rate_is_held_only_on_time_on_pace_and_clean() {
        let mut r = RunReport::default();
        r.profile.duration = std::time::Duration::from_secs(5);
        r.merged.counts.launched = 500;
        r.merged.counts.completed = 500;
        r.merged.orch_per_sec = 100.0;
        let held = judge(&r, 100.0);
        assert!(held.held, "{held:?}");
        r.merged.counts.late = 5;
        let late = judge(&r, 100.0);
        assert!(!late.held && late.why_not.contains("1.0% of starts late"), "{late:?}");
        let generator =
            Ceiling { late_limit_pct: LATE_LIMIT_PCT, steps: vec![held.clone(), late], ..Default::default() };
        assert!(generator.limited_by().starts_with("the generator's starts"));
        r.merged.counts.late = 0;
        let behind = judge(&r, 200.0);
        let runtime =
            Ceiling { late_limit_pct: LATE_LIMIT_PCT, steps: vec![held, behind.clone()], ..Default::default() };
        assert!(runtime.limited_by().starts_with("the runtime's completions"));
        assert!(!behind.held && behind.why_not.contains("fell behind"), "{behind:?}");
        // The pace is read after the first completions: a run that starts
        // slow and then keeps up holds; one whose tail falls behind does not.
        let second = |t: f64, completed: u64| crate::model::TimePoint { t_s: t, completed, ..Default::default() };
        r.timeline.merged = vec![second(1.3, 40), second(2.3, 100), second(3.3, 98), second(4.3, 101), second(5.3, 99)];
        assert!(judge(&r, 100.0).held, "{:?}", judge(&r, 100.0));
        r.timeline.merged = vec![second(1.3, 40), second(2.3, 90), second(3.3, 80), second(4.3, 70), second(5.3, 60)];
        assert!(!judge(&r, 100.0).held);
    }
}
