//! What a sweep recommends, each line with the measured figures behind it.

use loadgen_common::units::format_duration;

use crate::model::sweep::SweepMode;
use crate::model::{RunReport, SweepReport};

/// What to configure, each line with the measured figures behind it.
pub fn recommend(s: &SweepReport, runs: &[RunReport]) -> Vec<String> {
    let p = &s.profile;
    let mut out = Vec::new();
    let Some(k) = s.knee else {
        match (s.max_sustainable_orch_per_sec, s.steps.last()) {
            (Some(best), Some(last)) => out.push(format!(
                "The limit was not reached: every step met p99 <= {:.0} ms and throughput kept growing, up to {best:.1} orch/s (last step p99 {:.0} ms). The capacity is higher: sweep on from there (e.g. --start {} with more steps).",
                s.slo_p99_ms,
                last.p99_ms,
                if s.mode == SweepMode::Rate { format!("{}/s", last.offered) } else { format!("{}", last.offered) }
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
        s.mode.describe(ks.offered),
        ks.p99_ms,
        s.agents,
        p.runtimes_per_agent,
        p.dispatchers,
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
            u64::from(p.dispatchers.orch + p.dispatchers.worker) * u64::from(p.runtimes_per_agent) * s.agents as u64;
        let why = if next.deadlocks > 0 || next.peak_lock_waits >= (dispatchers / 2).max(2) {
            format!(
                "lock waits peaked at {} backend(s) and {} deadlock(s) were detected: contention inside the provider, so more dispatchers on this database add waiting rather than throughput",
                next.peak_lock_waits, next.deadlocks
            )
        } else {
            let waits = if next.peak_lock_waits == 0 {
                "no lock waits".to_string()
            } else {
                format!("few lock waits (peak {}, under half the dispatchers)", next.peak_lock_waits)
            };
            format!(
                "{waits}: the dispatchers ({} x {} runtime(s) x {} agent(s)) were saturated; more runtimes or agents (or higher --orch-concurrency/--worker-concurrency) should raise the knee while the database has headroom ({:.0} commits/s here)",
                p.dispatchers, p.runtimes_per_agent, s.agents, next.commits_per_sec
            )
        };
        out.push(format!(
            "Past the knee ({}): {:.1} orch/s at p99 {:.0} ms; {why}.",
            s.mode.describe(next.offered),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SweepStep;

    #[test]
    fn a_sweep_that_never_broke_says_the_limit_was_not_reached() {
        let step = |offered: f64, orch: f64, p99: f64| SweepStep {
            offered,
            achieved_orch_per_sec: orch,
            p99_ms: p99,
            within_slo: true,
            ..Default::default()
        };
        let s = SweepReport {
            mode: SweepMode::Rate,
            slo_p99_ms: 500.0,
            steps: vec![step(10.0, 10.0, 100.0), step(20.0, 20.0, 120.0)],
            knee: None,
            max_sustainable_orch_per_sec: Some(20.0),
            ..Default::default()
        };
        let advice = recommend(&s, &[]);
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert!(advice[0].starts_with("The limit was not reached") && advice[0].contains("--start 20/s"), "{advice:?}");
    }
}
