//! An A/B comparison for people: the builds, a line per metric with both
//! medians, the ratio and its interval and the verdict, then the stored
//! procedures, then every run.

use std::io::{self, Write};

use crate::model::ab::{AbMetric, AbReport};

fn ratio_cells(m: &AbMetric) -> (String, String) {
    match (m.ratio, m.low, m.high) {
        (Some(r), Some(lo), Some(hi)) => (format!("{r:.3}"), format!("[{lo:.3}, {hi:.3}]")),
        _ => ("-".into(), "-".into()),
    }
}

fn metric_row(w: &mut dyn Write, m: &AbMetric) -> io::Result<()> {
    let (ratio, interval) = ratio_cells(m);
    writeln!(
        w,
        "  {:<40} {:>12.3} {:>12.3} {:>8} {:>18}  {} ({} is better)",
        m.name,
        m.baseline_median,
        m.candidate_median,
        ratio,
        interval,
        m.verdict.as_str(),
        m.better
    )
}

pub fn render(ab: &AbReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)?;
    writeln!(w, "A/B on profile {}: {} run(s) per build, alternating in pairs", ab.profile, ab.repeat)?;
    for (name, b) in [("baseline", &ab.baseline), ("candidate", &ab.candidate)] {
        let env = if b.env.is_empty() { String::new() } else { format!(" with {}", b.env.join(" ")) };
        writeln!(
            w,
            "  {name:<9} {}{env} (duroxide {}, duroxide-pg {})",
            b.agent, b.duroxide_version, b.duroxide_pg_version
        )?;
    }
    writeln!(w)?;
    writeln!(
        w,
        "  {:<40} {:>12} {:>12} {:>8} {:>18}  verdict (95% bootstrap interval; differences under {:.1}% not called)",
        "metric (medians)", "baseline", "candidate", "ratio", "interval", ab.min_effect_pct
    )?;
    for m in &ab.metrics {
        metric_row(w, m)?;
    }
    if !ab.procedures.is_empty() {
        writeln!(w, "  stored procedures (pg_stat_user_functions):")?;
        for m in &ab.procedures {
            metric_row(w, m)?;
        }
    }
    writeln!(w)?;
    writeln!(
        w,
        "  {:<5} {:<10} {:<10} {:>8} {:>10} {:>10} {:>14}  gates",
        "run", "build", "id", "orch/s", "p50 ms", "p99 ms", "commits/orch"
    )?;
    for r in &ab.runs {
        writeln!(
            w,
            "  {:<5} {:<10} {:<10} {:>8.2} {:>10.1} {:>10.1} {:>14.2}  {}",
            r.figures.order,
            r.build.as_str(),
            r.figures.run_id,
            r.figures.orch_per_sec,
            r.figures.p50_ms,
            r.figures.p99_ms,
            r.figures.commits_per_orchestration,
            if r.figures.passed { "passed" } else { "FAILED" }
        )?;
    }
    for p in &ab.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    for n in &ab.notes {
        writeln!(w, "  [note] {n}")?;
    }
    let headline: Vec<String> = ab.metrics.iter().map(|m| format!("{} {}", m.name, m.verdict.as_str())).collect();
    writeln!(w)?;
    writeln!(w, "Verdict: {}; runs {}.", headline.join(", "), if ab.passed { "all passed" } else { "NOT all passed" })
}
