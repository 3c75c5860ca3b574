//! The text of a capacity sweep: one row per step, the knee, the stop
//! reason, the verdict and the recommendation.

use std::io::{self, Write};

use loadgen_common::units::format_duration;

use crate::model::SweepReport;
use crate::model::sweep::SweepMode;

/// The sweep as text: one row per step, the knee, the stop reason and the recommendation.
pub fn render(s: &SweepReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "Sweep ({} mode) of profile {} with {} agent(s), dispatchers {}, SLO p99 <= {:.0} ms, {} per step",
        s.mode.name(),
        s.profile.name,
        s.agents,
        s.profile.dispatchers,
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
            if s.mode == SweepMode::Rate { format!("{}/s", st.offered) } else { format!("{}", st.offered) },
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
    if !s.problems.is_empty() {
        writeln!(w, "Steps that failed: {}", s.problems.join("; "))?;
    }
    writeln!(w, "Sweep: {}", if s.passed { "PASSED" } else { "FAILED" })?;
    writeln!(w, "Recommendation:")?;
    for line in &s.recommendation {
        writeln!(w, "  - {line}")?;
    }
    Ok(())
}
