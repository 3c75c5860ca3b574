//! The HTML page of a capacity sweep.

use std::io::{self, Write};

use crate::model::{RunReport, SweepReport};

use crate::report::view::fmt_ms;

use super::charts::*;
use super::*;

/// A capacity sweep as an HTML page: the steps, the knee and SLO, the
/// recommendation, and the curves; `runs` are the steps' own runs (may be
/// empty), each shown as a compact throughput chart.
pub fn render_sweep(s: &SweepReport, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    let rate = s.mode == crate::model::sweep::SweepMode::Rate;
    page_start(w, &format!("Capacity sweep · {}", s.profile.name))?;
    writeln!(w, "<h1>Capacity sweep · profile {}</h1>", Esc(&s.profile.name))?;
    let unit = if rate { "orchestrations started per second (open loop)" } else { "in-flight budget (closed loop)" };
    writeln!(
        w,
        r#"<p class="sub">{} step(s) · offered load: {unit} · {} agent(s) · SLO p99 ≤ {} ms</p>"#,
        s.steps.len(),
        s.agents,
        num(s.slo_p99_ms)
    )?;
    writeln!(w, "<h2>Result</h2>")?;
    let knee = s.knee.and_then(|k| s.steps.get(k).map(|st| (k, st)));
    let rows = vec![
        (
            "max sustainable".to_string(),
            s.max_sustainable_orch_per_sec.map_or("none within the SLO".into(), |v| format!("{v:.2} orch/s")),
        ),
        (
            "knee".into(),
            knee.map_or("none".into(), |(k, st)| {
                format!(
                    "step {} (offered {}, {:.2} orch/s, p99 {:.1} ms)",
                    k + 1,
                    num(st.offered),
                    st.achieved_orch_per_sec,
                    st.p99_ms
                )
            }),
        ),
        ("stop reason".into(), s.stop_reason.clone()),
    ];
    kv_table(w, "", &rows)?;
    recommendation_and_steps(s, w)?;

    writeln!(w, "<h2>Curves</h2>")?;
    figure(w, "Throughput versus p99 latency", "one point per step, in step order", &sweep_curve(s))?;
    figure(w, "Offered versus achieved", "", &sweep_offered(s))?;
    configuration(s, runs, w)?;
    step_runs(s, runs, w)?;
    page_end(w)
}

/// The recommendation and the table of steps.
fn recommendation_and_steps(s: &SweepReport, w: &mut dyn Write) -> io::Result<()> {
    if !s.recommendation.is_empty() {
        writeln!(w, "<p><b>Recommendation</b></p><ul>")?;
        for line in &s.recommendation {
            writeln!(w, "<li>{}</li>", Esc(line))?;
        }
        writeln!(w, "</ul>")?;
    }
    let head = [
        "step",
        "offered",
        "orch/s",
        "p50",
        "p99",
        "max",
        "mean in flight",
        "Little's law X·W",
        "late",
        "dropped",
        "failed",
        "deadlocks",
        "rollbacks",
        "commits/s",
        "peak lock waits",
        "within SLO",
    ];
    let rows = s.steps.iter().enumerate().map(|(i, st)| {
        let class = if s.knee == Some(i) {
            Some("hl")
        } else if st.within_slo {
            None
        } else {
            Some("bad")
        };
        let cells = vec![
            format!("{}{}", i + 1, if s.knee == Some(i) { " (knee)" } else { "" }),
            num(st.offered),
            format!("{:.2}", st.achieved_orch_per_sec),
            format!("{:.1} ms", st.p50_ms),
            format!("{:.1} ms", st.p99_ms),
            format!("{:.1} ms", st.max_ms),
            format!("{:.1}", st.mean_in_flight),
            format!("{:.1}", st.littles_law_in_flight),
            st.late.to_string(),
            st.dropped.to_string(),
            st.failed.to_string(),
            st.deadlocks.to_string(),
            st.rollbacks.to_string(),
            format!("{:.1}", st.commits_per_sec),
            st.peak_lock_waits.to_string(),
            if st.within_slo { "yes" } else { "no" }.to_string(),
        ];
        (class, cells)
    });
    table(w, "Steps", &head, 1, rows)
}

/// The profile every step shared, and where it ran.
fn configuration(s: &SweepReport, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, r#"<h2>Configuration and environment</h2><div class="cols">"#)?;
    kv_table(w, "Profile every step shared", &profile_rows(&s.profile))?;
    let mut env = Vec::new();
    if let Some(r) = runs.first() {
        env.push(("tool".to_string(), r.tool_version.clone()));
        env.push(("duroxide".into(), r.duroxide_version.clone()));
        env.push(("duroxide-pg".into(), r.duroxide_pg_version.clone()));
        env.push(("database".into(), r.database.clone()));
    }
    env.extend(environment_rows(&s.environment));
    kv_table(w, "Environment", &env)?;
    writeln!(w, "</div>")
}

/// Each step's run, as a small throughput chart.
fn step_runs(s: &SweepReport, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    if !runs.is_empty() {
        writeln!(w, "<h2>Step runs</h2>")?;
    }
    for (i, r) in runs.iter().enumerate() {
        let step = s.steps.iter().position(|st| !st.run_id.is_empty() && st.run_id == r.run_id).unwrap_or(i);
        let title = format!("Step {} · run {}", step + 1, r.run_id);
        let detail = format!(
            "{:.2} orch/s, p99 {}, {} completed, {} failed",
            r.merged.orch_per_sec,
            fmt_ms(r.merged.headline_latency().p99_us),
            r.merged.counts.completed,
            r.merged.counts.failed()
        );
        let mut chart = throughput_chart(r, "step-throughput");
        chart.plot_height = 130.0;
        chart.y_label = "orch/s".into();
        figure(w, &title, &detail, &chart)?;
    }
    Ok(())
}
