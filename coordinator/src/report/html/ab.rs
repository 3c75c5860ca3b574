//! The HTML page of an A/B comparison: the builds, the verdict per metric
//! with its interval, every repetition's throughput and p99 by run order,
//! the per-procedure ratios and the runs.

use std::io::{self, Write};

use crate::model::RunReport;
use crate::model::ab::{AbMetric, AbReport, Build};

use super::svg::{Chart, Series};
use super::*;

/// Colour of the candidate's points (the baseline's is the merged colour).
const COLOR_CANDIDATE: &str = "#ff7f0e";

fn metric_rows<'a>(ms: &'a [AbMetric]) -> impl Iterator<Item = (Option<&'static str>, Vec<String>)> + 'a {
    ms.iter().map(|m| {
        let class = match m.verdict {
            crate::model::ab::Verdict::Slower => Some("bad"),
            _ => None,
        };
        let interval = match (m.low, m.high) {
            (Some(lo), Some(hi)) => format!("[{lo:.3}, {hi:.3}]"),
            _ => "-".into(),
        };
        let cells = vec![
            m.name.clone(),
            m.verdict.as_str().to_string(),
            format!("{:.3}", m.baseline_median),
            format!("{:.3}", m.candidate_median),
            m.ratio.map_or("-".into(), |r| format!("{r:.3}")),
            interval,
            m.better.clone(),
        ];
        (class, cells)
    })
}

/// One chart of a per-run figure, a line per build by run order.
fn by_run(ab: &AbReport, name: &str, title: &str, y: &str, f: fn(&crate::model::ab::AbRun) -> f64) -> Chart {
    let mut c = Chart::new(name, title, "run (in the order they ran)", y);
    for (build, color) in [(Build::Baseline, COLOR_MERGED), (Build::Candidate, COLOR_CANDIDATE)] {
        let points = ab.runs.iter().filter(|r| r.build == build).map(|r| (r.figures.order as f64, f(r))).collect();
        c.series.push(Series::line(build.as_str(), color, points).dots());
    }
    c
}

pub fn render_ab(ab: &AbReport, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    page_start(w, &format!("A/B · {}", ab.profile))?;
    write!(w, "<h1>A/B · profile {}", Esc(&ab.profile))?;
    let (class, verdict) = if ab.passed { ("pass", "RUNS PASSED") } else { ("fail", "A RUN FAILED") };
    writeln!(w, r#"<span class="badge {class}">{verdict}</span></h1>"#)?;
    writeln!(
        w,
        r#"<p class="sub">{} run(s) per build, alternating in pairs · 95% percentile-bootstrap intervals of the ratio of medians · differences under {:.1}% not called</p>"#,
        ab.repeat, ab.min_effect_pct
    )?;
    let build_rows = |b: &crate::model::ab::BuildInfo| {
        vec![
            ("agent".to_string(), b.agent.clone()),
            ("environment".into(), if b.env.is_empty() { "-".into() } else { b.env.join(" ") }),
            ("duroxide".into(), b.duroxide_version.clone()),
            ("duroxide-pg".into(), b.duroxide_pg_version.clone()),
        ]
    };
    writeln!(w, r#"<div class="cols">"#)?;
    kv_table(w, "Baseline", &build_rows(&ab.baseline))?;
    kv_table(w, "Candidate", &build_rows(&ab.candidate))?;
    writeln!(w, "</div>")?;
    writeln!(w, "<h2>Verdict</h2>")?;
    let head = ["metric (medians)", "verdict", "baseline", "candidate", "ratio", "95% interval", "better"];
    table(w, "Headline metrics", &head, 2, metric_rows(&ab.metrics))?;
    if !ab.procedures.is_empty() {
        table(w, "Stored procedures (pg_stat_user_functions)", &head, 2, metric_rows(&ab.procedures))?;
    }
    figure(
        w,
        "Throughput by run",
        "orchestrations per second of each run",
        &by_run(ab, "ab-throughput", "Throughput", "orch/s", |r| r.figures.orch_per_sec),
    )?;
    figure(w, "p99 by run", "headline p99 of each run", &by_run(ab, "ab-p99", "p99", "ms", |r| r.figures.p99_ms))?;
    let rows = ab.runs.iter().map(|r| {
        let cells = vec![
            r.figures.order.to_string(),
            r.build.as_str().to_string(),
            r.figures.run_id.clone(),
            format!("{:.2}", r.figures.orch_per_sec),
            format!("{:.1}", r.figures.p50_ms),
            format!("{:.1}", r.figures.p99_ms),
            format!("{:.2}", r.figures.commits_per_orchestration),
            if r.figures.passed { "passed".into() } else { "FAILED".into() },
        ];
        (if r.figures.passed { None } else { Some("bad") }, cells)
    });
    table(w, "Runs", &["run", "build", "id", "orch/s", "p50 ms", "p99 ms", "commits/orch", "gates"], 3, rows)?;
    for p in ab.problems.iter().chain(&ab.notes) {
        writeln!(w, r#"<p class="sub">{}</p>"#, Esc(p))?;
    }
    writeln!(w, "<h2>Every run</h2>")?;
    for r in runs {
        writeln!(
            w,
            r#"<p class="sub">Run {} · {} · {:.2} orch/s · audit {} of {} as expected</p>"#,
            Esc(&r.run_id),
            if r.passed { "passed" } else { "FAILED" },
            r.merged.orch_per_sec,
            r.audit.as_expected,
            r.audit.launched
        )?;
    }
    page_end(w)
}
