//! `coordinator sweep`: raise the offered load step by step (open-loop rate,
//! or closed-loop budget), each step a full run on a fresh schema with the
//! same agents and database, until the p99 SLO breaks, throughput stops
//! growing, or the database degrades badly; then report the knee, the highest
//! throughput sustained within the SLO, Little's law as a cross-check, and a
//! recommendation with the measured numbers behind it.

use loadgen_common::apportion::split_budget;
use loadgen_common::config::{Profile, format_duration};
use loadgen_common::result::{RunReport, SweepReport, SweepStep};
use tokio_util::sync::CancellationToken;

use crate::cli::{Args, SweepArgs, SweepMode};
use crate::error::CoordinatorError;
use crate::run::{in_flight_budget, rate_shares, resolve_profile, run_once};
use crate::session::{Session, plan_agents};

/// Carry out a sweep. Returns the sweep and every step's full run.
pub async fn sweep(
    args: &Args,
    plan: &SweepArgs,
    shutdown: CancellationToken,
) -> Result<(SweepReport, Vec<RunReport>), CoordinatorError> {
    // Flags the sweep sets per step would be silently overridden.
    if args.duration.is_some() {
        return Err(CoordinatorError::Usage("a sweep's steps last --step-duration, not --duration".into()));
    }
    match plan.mode {
        SweepMode::Rate if args.rate.is_some() => {
            return Err(CoordinatorError::Usage("a rate sweep sets the rate per step: give --steps or --start".into()));
        }
        SweepMode::Budget if args.max_concurrent.is_some() || args.rate.is_some() => {
            return Err(CoordinatorError::Usage(
                "a budget sweep sets --max-concurrent per step and runs closed loop: drop --max-concurrent/--rate"
                    .into(),
            ));
        }
        _ => {}
    }
    crate::run::check_open_loop_flags(args, plan.mode == SweepMode::Rate)?;
    let mut profile = resolve_profile(args)?;
    if plan.step_duration.is_zero() {
        return Err(CoordinatorError::Usage("--step-duration must be positive".into()));
    }
    profile.duration = plan.step_duration;
    if !profile.suite.is_empty() {
        return Err(CoordinatorError::Usage("a sweep keeps one dispatcher setting: drop --suite".into()));
    }
    let steps = plan.offered_steps()?;
    crate::run::check_outputs(args)?;
    let addresses = plan_agents(args)?;
    let mut session = Session::default();
    let result = tokio::select! {
        r = execute(args, plan, &profile, &steps, addresses, &mut session) => r,
        _ = shutdown.cancelled() => Err(CoordinatorError::Interrupted),
    };
    session.close().await;
    result
}

async fn execute(
    args: &Args,
    plan: &SweepArgs,
    base: &Profile,
    steps: &[f64],
    addresses: Vec<String>,
    session: &mut Session,
) -> Result<(SweepReport, Vec<RunReport>), CoordinatorError> {
    let first = step_profile(base, plan.mode, steps.first().copied().unwrap_or(1.0));
    session.open(args, &first, addresses).await?;
    let agents = session.links.len();
    let slo_ms = plan.slo_p99.as_secs_f64() * 1000.0;
    let mut runs = Vec::new();
    let mut out = Vec::new();
    let mut stop_reason = format!("all {} steps ran", steps.len());
    for (i, offered) in steps.iter().copied().enumerate() {
        let profile = step_profile(base, plan.mode, offered);
        if let Some(rate) = profile.rate {
            rate_shares(rate, agents)?;
        }
        let slices = split_budget(in_flight_budget(&profile), agents)?;
        eprintln!(
            "\n=== sweep step {} of at most {}: {} ===",
            i + 1,
            steps.len(),
            describe_offered(plan.mode, offered)
        );
        let report = run_once(session, &profile, &slices, args).await?;
        session.end_run().await;
        let step = summarize(&report, offered, slo_ms);
        eprintln!(
            "step {}: {} -> {:.1} orch/s, p99 {:.0} ms{}",
            i + 1,
            describe_offered(plan.mode, offered),
            step.achieved_orch_per_sec,
            step.p99_ms,
            if step.within_slo { " (within the SLO)" } else { " (SLO broken)" }
        );
        let previous = out.last().map(|s: &SweepStep| s.achieved_orch_per_sec);
        let degraded = degraded(&step, &report, slo_ms);
        out.push(step.clone());
        runs.push(report);
        if let Some(why) = degraded {
            stop_reason = format!("stopped early at step {}: the database degraded badly ({why})", i + 1);
            break;
        }
        if !step.within_slo {
            stop_reason = format!(
                "the SLO broke at step {} ({}: p99 {:.0} ms > {:.0} ms{})",
                i + 1,
                describe_offered(plan.mode, offered),
                step.p99_ms,
                slo_ms,
                if step.failed + step.dropped > 0 {
                    format!(", {} failed, {} dropped", step.failed, step.dropped)
                } else {
                    String::new()
                }
            );
            break;
        }
        if let Some(prev) = previous
            && step.achieved_orch_per_sec < prev * (1.0 + plan.min_gain_pct / 100.0)
        {
            stop_reason = format!(
                "throughput stopped growing at step {} ({:.1} -> {:.1} orch/s, less than +{}%)",
                i + 1,
                prev,
                step.achieved_orch_per_sec,
                plan.min_gain_pct
            );
            break;
        }
    }
    // Every step met the SLO and throughput kept growing: the limit lies
    // beyond the last step, so there is no knee yet.
    let limit_found = out.iter().any(|s| !s.within_slo) || stop_reason.starts_with("throughput stopped");
    let knee = if limit_found { knee(&out) } else { None };
    let max_sustainable = out.iter().filter(|s| s.within_slo).map(|s| s.achieved_orch_per_sec).reduce(f64::max);
    let environment = runs.last().map(|r| r.environment.clone()).unwrap_or_default();
    let mut report = SweepReport {
        mode: plan.mode.name().into(),
        slo_p99_ms: slo_ms,
        steps: out,
        knee,
        max_sustainable_orch_per_sec: max_sustainable,
        stop_reason,
        recommendation: Vec::new(),
        profile: base.clone(),
        environment,
        agents,
    };
    report.recommendation = recommend(&report, &runs);
    Ok((report, runs))
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

fn describe_offered(mode: SweepMode, offered: f64) -> String {
    match mode {
        SweepMode::Rate => format!("{offered}/s offered"),
        SweepMode::Budget => format!("{offered} in flight"),
    }
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
    let failed = m.counts.failed() + m.counts.start_errors + m.counts.unfinished;
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
        within_slo: p99_ms <= slo_ms && failed == 0 && m.counts.dropped == 0 && r.audit.passed(),
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

/// What to configure, each line with the measured figures behind it.
fn recommend(s: &SweepReport, runs: &[RunReport]) -> Vec<String> {
    let p = &s.profile;
    let mut out = Vec::new();
    let Some(k) = s.knee else {
        match (s.max_sustainable_orch_per_sec, s.steps.last()) {
            (Some(best), Some(last)) => out.push(format!(
                "The limit was not reached: every step met p99 <= {:.0} ms and throughput kept growing, up to {best:.1} orch/s (last step p99 {:.0} ms). The capacity is higher: sweep on from there (e.g. --start {} with more steps).",
                s.slo_p99_ms,
                last.p99_ms,
                if s.mode == "rate" { format!("{}/s", last.offered) } else { format!("{}", last.offered) }
            )),
            _ => out.push(format!(
                "No step met p99 <= {:.0} ms: start lower (--start or --steps), or relax the SLO. First step: {}.",
                s.slo_p99_ms,
                s.steps
                    .first()
                    .map_or("none".into(), |f| format!("{:.1} orch/s at p99 {:.0} ms", f.achieved_orch_per_sec, f.p99_ms))
            )),
        }
        return out;
    };
    let ks = &s.steps[k];
    let run = runs.get(k);
    out.push(format!(
        "Sustainable at p99 <= {:.0} ms: {:.1} orchestrations/s ({}), p99 {:.0} ms, with {} agent(s) x {} runtime(s), dispatchers {}, pool {} per provider.",
        s.slo_p99_ms,
        ks.achieved_orch_per_sec,
        describe_offered(if s.mode == "rate" { SweepMode::Rate } else { SweepMode::Budget }, ks.offered),
        ks.p99_ms,
        s.agents,
        p.runtimes_per_agent,
        p.dispatchers(),
        p.pool_max.map_or("10 (default)".into(), |n| n.to_string())
    ));
    if let Some(r) = run {
        let peak_conn = r.db_timeline.iter().map(|d| d.connections.values().sum::<u64>()).max().unwrap_or(0);
        let max_conn = r.postgres_settings.get("max_connections").cloned().unwrap_or_else(|| "?".into());
        out.push(format!(
            "Connections at the knee: at most {peak_conn} open (max_connections {max_conn}); plan agents x (runtimes + 1) x pool + 10 within it. Commits: {:.0}/s, {:.1} per orchestration.",
            ks.commits_per_sec,
            r.db_load.commits_per_orchestration
        ));
    }
    let diff = if ks.mean_in_flight > 0.0 {
        (ks.littles_law_in_flight - ks.mean_in_flight).abs() / ks.mean_in_flight * 100.0
    } else {
        0.0
    };
    out.push(format!(
        "Little's law at the knee: throughput x mean time in flight = {:.1}/s x {:.3} s = {:.1} in flight, measured mean {:.1} ({diff:.0}% apart){}.",
        ks.achieved_orch_per_sec,
        if ks.achieved_orch_per_sec > 0.0 { ks.littles_law_in_flight / ks.achieved_orch_per_sec } else { 0.0 },
        ks.littles_law_in_flight,
        ks.mean_in_flight,
        if diff > 25.0 { "; the gap means the run was not steady: lengthen --step-duration" } else { "" }
    ));
    if let Some(next) = s.steps.get(k + 1) {
        // Lock contention: deadlocks, or at least half the dispatchers (and
        // two backends) waiting on locks at once.
        let dispatchers =
            u64::from(p.orch_concurrency + p.worker_concurrency) * u64::from(p.runtimes_per_agent) * s.agents as u64;
        let why = if next.deadlocks > 0 || next.peak_lock_waits >= (dispatchers / 2).max(2) {
            format!(
                "lock waits peaked at {} backend(s) and {} deadlock(s) were detected: contention inside the provider, so more dispatchers on this database add waiting rather than throughput",
                next.peak_lock_waits, next.deadlocks
            )
        } else {
            format!(
                "no lock waits: the dispatchers ({} x {} runtime(s) x {} agent(s)) were saturated; more runtimes or agents (or higher --orch-concurrency/--worker-concurrency) should raise the knee while the database has headroom ({:.0} commits/s here)",
                p.dispatchers(),
                p.runtimes_per_agent,
                s.agents,
                next.commits_per_sec
            )
        };
        out.push(format!(
            "Past the knee ({}): {:.1} orch/s at p99 {:.0} ms; {why}.",
            describe_offered(if s.mode == "rate" { SweepMode::Rate } else { SweepMode::Budget }, next.offered),
            next.achieved_orch_per_sec,
            next.p99_ms
        ));
    }
    out.push(format!(
        "Each step ran {} of load; repeat the knee step with --duration 5m (or the soak profile) before sizing production on it.",
        format_duration(p.duration)
    ));
    out
}

/// The sweep as text: one row per step, the knee, the stop reason and the recommendation.
pub fn render(s: &SweepReport, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "Sweep ({} mode) of profile {} with {} agent(s), dispatchers {}, SLO p99 <= {:.0} ms, {} per step",
        s.mode,
        s.profile.name,
        s.agents,
        s.profile.dispatchers(),
        s.slo_p99_ms,
        format_duration(s.profile.duration)
    )?;
    writeln!(
        w,
        "{:>4} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>7} {:>6} {:>9} {:>6} {:>5}",
        "step",
        "offered",
        "orch/s",
        "p50",
        "p99",
        "max",
        "inflight",
        "little",
        "late",
        "dropped",
        "failed",
        "commits/s",
        "locks",
        "SLO"
    )?;
    for (i, st) in s.steps.iter().enumerate() {
        writeln!(
            w,
            "{:>4} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.1} {:>6} {:>7} {:>6} {:>9.0} {:>6} {:>5}{}",
            i + 1,
            if s.mode == "rate" { format!("{}/s", st.offered) } else { format!("{}", st.offered) },
            st.achieved_orch_per_sec,
            st.p50_ms,
            st.p99_ms,
            st.max_ms,
            st.mean_in_flight,
            st.littles_law_in_flight,
            st.late,
            st.dropped,
            st.failed,
            st.commits_per_sec,
            st.peak_lock_waits,
            if st.within_slo { "ok" } else { "BROKE" },
            if s.knee == Some(i) { "  <- knee" } else { "" }
        )?;
    }
    writeln!(
        w,
        "(latencies in ms, from the intended start in rate mode; orch/s over the load seconds; inflight = measured mean; little = orch/s x mean time in flight)"
    )?;
    writeln!(w)?;
    writeln!(w, "Stop: {}.", s.stop_reason)?;
    match (s.max_sustainable_orch_per_sec, s.knee) {
        (Some(x), Some(k)) => writeln!(w, "Knee: step {}. Highest throughput within the SLO: {x:.1} orch/s.", k + 1)?,
        (Some(x), None) => writeln!(w, "No knee yet: every step met the SLO (at least {x:.1} orch/s).")?,
        (None, _) => writeln!(w, "No step met the SLO.")?,
    }
    writeln!(w, "Recommendation:")?;
    for line in &s.recommendation {
        writeln!(w, "  - {line}")?;
    }
    Ok(())
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
    fn a_sweep_that_never_broke_says_the_limit_was_not_reached() {
        let s = SweepReport {
            mode: "rate".into(),
            slo_p99_ms: 500.0,
            steps: vec![
                SweepStep { offered: 10.0, ..step(10.0, 100.0, true) },
                SweepStep { offered: 20.0, ..step(20.0, 120.0, true) },
            ],
            knee: None,
            max_sustainable_orch_per_sec: Some(20.0),
            ..Default::default()
        };
        let advice = recommend(&s, &[]);
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert!(advice[0].starts_with("The limit was not reached") && advice[0].contains("--start 20/s"), "{advice:?}");
        let mut text = Vec::new();
        render(&s, &mut text).expect("render");
        assert!(String::from_utf8_lossy(&text).contains("No knee yet: every step met the SLO (at least 20.0 orch/s)"));
    }

    #[test]
    fn geometric_steps() {
        assert_eq!(geometric(10.0, 2.0, 4), [10.0, 20.0, 40.0, 80.0]);
        assert_eq!(geometric(10.0, 1.5, 3), [10.0, 15.0, 22.5]);
    }
}
