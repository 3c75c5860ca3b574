//! The HTML page of a provider comparison: the table per combination, a
//! chart of each provider's median throughput by combination, and the runs.

use std::io::{self, Write};

use crate::model::RunReport;
use crate::model::compare::CompareReport;

use super::svg::{Chart, Series};
use super::*;

/// One colour per provider, in the order given.
const COLORS: [&str; 3] = [COLOR_MERGED, COLOR_COMMITS, COLOR_P50];

pub fn render_compare(c: &CompareReport, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    page_start(w, &format!("Providers · {}", c.profile))?;
    write!(w, "<h1>Providers compared · profile {}", Esc(&c.profile))?;
    let (class, verdict) = if c.passed { ("pass", "RUNS PASSED") } else { ("fail", "A RUN FAILED") };
    writeln!(w, r#"<span class="badge {class}">{verdict}</span></h1>"#)?;
    writeln!(
        w,
        r#"<p class="sub">{} run(s) per provider and combination, the order rotating · Postgres: {}{}</p>"#,
        c.repeat,
        Esc(&c.database),
        c.expected
            .as_ref()
            .map_or(String::new(), |e| format!(" · the plan expects Postgres at {e} of SQLite in memory"))
    )?;
    let rows = c.rows.iter().flat_map(|row| {
        let ratio = row.ratio.map_or("-".into(), |r| format!("{:.0}%", r * 100.0));
        row.cells.iter().map(move |cell| {
            let cells = vec![
                row.dispatchers.clone(),
                cell.provider.as_str().to_string(),
                format!("{:.1}", cell.min),
                format!("{:.1}", cell.median),
                format!("{:.1}", cell.max),
                format!("{:.1}", cell.p50_ms),
                format!("{:.1}", cell.p99_ms),
                ratio.clone(),
            ];
            (None, cells)
        })
    });
    let head = ["dispatchers", "provider", "orch/s min", "median", "max", "p50 ms", "p99 ms", "Postgres/SQLite"];
    table(w, "Throughput and latency by combination", &head, 2, rows)?;
    let mut chart = Chart::new("compare-throughput", "Throughput", "dispatcher combination", "median orch/s");
    chart.x_ticks = Some(c.rows.iter().enumerate().map(|(i, r)| (i as f64 + 1.0, r.dispatchers.clone())).collect());
    for (k, p) in c.providers.iter().enumerate() {
        let points = c
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.cells.iter().find(|cell| cell.provider == *p).map(|cell| (i as f64 + 1.0, cell.median))
            })
            .collect();
        chart.series.push(Series::line(p.as_str(), COLORS[k % COLORS.len()], points).dots());
    }
    figure(w, "Throughput by provider", "median over the repetitions", &chart)?;
    let run_rows = c.runs.iter().map(|r| {
        let cells = vec![
            r.figures.order.to_string(),
            r.provider.as_str().to_string(),
            r.dispatchers.clone(),
            r.figures.run_id.clone(),
            format!("{:.2}", r.figures.orch_per_sec),
            format!("{:.1}", r.figures.p50_ms),
            format!("{:.1}", r.figures.p99_ms),
            if r.figures.passed { "passed".into() } else { "FAILED".into() },
        ];
        (if r.figures.passed { None } else { Some("bad") }, cells)
    });
    table(w, "Runs", &["run", "provider", "dispatchers", "id", "orch/s", "p50 ms", "p99 ms", "gates"], 4, run_rows)?;
    for p in &c.problems {
        writeln!(w, r#"<p class="sub">{}</p>"#, Esc(p))?;
    }
    writeln!(w, r#"<p class="sub">{} run(s) in the JSON, each in full.</p>"#, runs.len())?;
    page_end(w)
}
