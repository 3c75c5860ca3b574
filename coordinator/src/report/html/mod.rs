//! The HTML renderer of a run and of a capacity sweep: one self-contained
//! page each, readable offline.
//!
//! The page carries its CSS inline and its charts as inline SVG drawn by
//! [`svg`]; it has no script and refers to nothing outside itself (a
//! Content-Security-Policy of `default-src 'none'` says so to the browser).
//! Every text that comes from a report (host names, gate values, settings) is
//! escaped with [`Esc`], so a report cannot inject markup into the page.
//!
//! Chart elements carry `class="chart"` and `data-chart="<name>"`, and the
//! main lines use the fixed colours below, so tests can find them in the
//! markup and in a screenshot.
//!
//! - `run`: the page of one run;
//! - `sweep`: the page of a capacity sweep;
//! - `charts`: the charts both draw from a report;
//! - `scenarios`: the run page's per-scenario, contention and audit sections;
//! - [`svg`]: the inline SVG line charts;
//! - [`escape`]: escaping of report text.

use std::io::{self, Write};

use loadgen_common::units::format_duration;

use super::{Document, Renderer};
use crate::model::Environment;
use crate::plan::ProfilePlan;

mod ab;
mod axis;
mod charts;
mod compare;
pub mod escape;
mod matrix;
mod procedures;
mod run;
mod scenarios;
pub mod svg;
mod sweep;
mod verdict;

pub use escape::Esc;
pub use run::render_run;
use svg::Chart;
pub use sweep::render_sweep;

/// Self-contained HTML pages with charts.
#[derive(Debug)]
pub struct Html;

impl Renderer for Html {
    fn name(&self) -> &'static str {
        "html"
    }

    fn supports(&self, doc: &Document<'_>) -> bool {
        matches!(
            doc,
            Document::Run(_)
                | Document::Suite { .. }
                | Document::Sweep { .. }
                | Document::Ab { .. }
                | Document::Compare { .. }
                | Document::Matrix { .. }
        )
    }

    fn render(&self, doc: &Document<'_>, w: &mut dyn Write) -> io::Result<()> {
        match doc {
            Document::Run(r) => render_run(r, w),
            Document::Ab { ab: report, runs } => ab::render_ab(report, runs, w),
            Document::Compare { compare: c, runs } => compare::render_compare(c, runs, w),
            Document::Matrix { matrix, runs } => matrix::render_matrix(matrix, runs, w),
            // To one file a suite is its runs' pages in a row; to files, one each.
            Document::Suite { runs, .. } => runs.iter().try_for_each(|r| render_run(r, w)),
            Document::Sweep { sweep, runs } => render_sweep(sweep, runs, w),
            _ => Err(io::Error::other("not a run or sweep")),
        }
    }

    fn file_per_run(&self) -> bool {
        true
    }
}

/// Merged throughput, and the merged p99 latency line.
pub const COLOR_MERGED: &str = "#1f77b4";
/// Merged p50 latency.
pub const COLOR_P50: &str = "#2ca02c";
/// Merged max latency, and limits such as the SLO and deadlocks.
pub const COLOR_MAX: &str = "#d62728";
/// The percentile spectrum.
pub const COLOR_SPECTRUM: &str = "#9467bd";
/// Database commits per second.
pub const COLOR_COMMITS: &str = "#ff7f0e";
/// The sweep's throughput-versus-p99 curve.
pub const COLOR_SWEEP: &str = "#17becf";
/// The sweep's knee marker.
pub const COLOR_KNEE: &str = "#e377c2";
/// The load the plan offered (stages).
pub const COLOR_OFFERED: &str = "#111111";
/// Fault bands.
pub const COLOR_FAULT: &str = "#ff9896";
/// Secondary lines (agents, connection states, queues): none of them is one
/// of the colours above, so each of those stays unique to its line.
const PALETTE: [&str; 8] = ["#8c564b", "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"];

const CSS: &str = "
body{margin:0;background:#f6f7f9;color:#1d2330;font:14px/1.45 system-ui,'Segoe UI','DejaVu Sans',Helvetica,Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d5d9e0;padding-bottom:4px}
.sub{color:#5a6372;margin:0 0 8px}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;color:#fff;margin-left:8px;font-size:14px;vertical-align:middle}
.pass{background:#2e7d32}.fail{background:#c62828}.degraded{background:#ef6c00}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #dde1e7;padding:3px 7px;white-space:nowrap}th{background:#eef1f5;text-align:left}
.scroll{max-width:100%;overflow-x:auto}table.data th{white-space:normal;vertical-align:bottom}
table.data td{text-align:right;font-variant-numeric:tabular-nums}table.data td.t{text-align:left}
td.t{white-space:normal;overflow-wrap:anywhere;max-width:44em}
table.kv th{font-weight:600;min-width:180px}
tr.bad td{background:#fdecea}tr.hl td{background:#fdf1f8}tr.merged td{font-weight:700}
.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
figure{margin:14px 0;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 10px}
figcaption{font-weight:600;margin-bottom:2px}figcaption span{font-weight:400;color:#5a6372}
svg.chart{width:100%;height:auto;display:block;font-size:12px;fill:#1d2330}
svg.chart .grid line{stroke:#e6e9ee;stroke-width:1}svg.chart .tick{fill:#4a5260}
svg.chart .axis-label{font-size:13px;font-weight:600}svg.chart .mark-label{font-weight:700;font-size:13px}
svg.chart .rule{font-weight:600}svg.chart .point-label{font-size:11px;fill:#4a5260}
svg.chart .rule,svg.chart .mark-label,svg.chart .point-label{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.nodata{color:#5a6372;font-style:italic;margin:6px 0}
ul{margin:4px 0 10px}li.bad{color:#c62828}
.tiles{display:flex;gap:10px;flex-wrap:wrap;margin:10px 0 4px}
.tile{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:6px 14px;min-width:96px}
.tile b{display:block;font-size:20px;font-variant-numeric:tabular-nums}.tile span{color:#5a6372;font-size:12px}
.tile.bad{border-color:#c62828}.tile.bad b{color:#c62828}p.bad{color:#c62828;font-weight:600}
";

fn page_start(w: &mut dyn Write, title: &str) -> io::Result<()> {
    writeln!(w, "<!DOCTYPE html>")?;
    writeln!(w, r#"<html lang="en"><head><meta charset="utf-8">"#)?;
    // Nothing may be fetched or run: the page is a document, not an app.
    writeln!(
        w,
        r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">"#
    )?;
    writeln!(w, r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)?;
    writeln!(w, "<title>{}</title><style>{CSS}</style></head><body><main>", Esc(title))
}

fn page_end(w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "</main></body></html>")
}

/// A two-column table of names and values, under an optional caption.
fn kv_table(w: &mut dyn Write, caption: &str, rows: &[(String, String)]) -> io::Result<()> {
    writeln!(w, r#"<table class="kv">"#)?;
    if !caption.is_empty() {
        writeln!(w, "<caption><b>{}</b></caption>", Esc(caption))?;
    }
    for (k, v) in rows {
        writeln!(w, "<tr><th>{}</th><td>{}</td></tr>", Esc(k), Esc(v))?;
    }
    writeln!(w, "</table>")
}

/// A table of text cells: the first `text_cols` columns are text (left
/// aligned), the others figures (right aligned); a row may carry a CSS class.
fn table(
    w: &mut dyn Write,
    caption: &str,
    head: &[&str],
    text_cols: usize,
    rows: impl Iterator<Item = (Option<&'static str>, Vec<String>)>,
) -> io::Result<()> {
    writeln!(w, r#"<div class="scroll"><table class="data">"#)?;
    if !caption.is_empty() {
        writeln!(w, "<caption><b>{}</b></caption>", Esc(caption))?;
    }
    write!(w, "<tr>")?;
    for h in head {
        write!(w, "<th>{}</th>", Esc(h))?;
    }
    writeln!(w, "</tr>")?;
    for (class, cells) in rows {
        match class {
            Some(c) => write!(w, r#"<tr class="{c}">"#)?,
            None => write!(w, "<tr>")?,
        }
        for (i, c) in cells.iter().enumerate() {
            let class = if i < text_cols { r#" class="t""# } else { "" };
            write!(w, "<td{class}>{}</td>", Esc(c))?;
        }
        writeln!(w, "</tr>")?;
    }
    writeln!(w, "</table></div>")
}

fn figure(w: &mut dyn Write, title: &str, detail: &str, chart: &Chart) -> io::Result<()> {
    write!(w, "<figure><figcaption>{}", Esc(title))?;
    if !detail.is_empty() {
        write!(w, " <span>— {}</span>", Esc(detail))?;
    }
    writeln!(w, "</figcaption>")?;
    chart.render(w)?;
    writeln!(w, "</figure>")
}

/// A number without trailing zeros ("50", "12.5").
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The profile as the run resolved it, by the names of the profile file.
fn profile_rows(p: &ProfilePlan) -> Vec<(String, String)> {
    let d = format_duration;
    let mut rows: Vec<(&str, String)> = vec![("name", p.name.clone())];
    if !p.description.is_empty() {
        rows.push(("description", p.description.clone()));
    }
    match p.load.arrival() {
        Some(arrival) => {
            rows.push(("rate", format!("{} orch/s (open loop)", num(p.load.peak()))));
            rows.push(("arrival", arrival.as_str().into()));
            let cap = p.in_flight();
            rows.push(("max_in_flight", if p.default_cap { format!("{cap} (default)") } else { cap.to_string() }));
        }
        None => rows.push(("max_concurrent", p.in_flight().to_string())),
    }
    if p.load.staged {
        rows.push(("stages", p.load_phrase.clone()));
    }
    rows.extend([
        ("duration", d(p.duration)),
        ("scenario", p.scenario.clone()),
        ("dispatchers (orch:worker)", p.dispatchers.to_string()),
        ("runtimes_per_agent", p.runtimes_per_agent.to_string()),
        ("poll_interval", d(p.poll_interval)),
        ("drain_timeout", d(p.drain_timeout)),
        ("min_orch_per_sec", num(p.gates.min_orch_per_sec)),
    ]);
    let g = &p.gates;
    let optional = [
        (
            "options",
            (!p.options.is_empty())
                .then(|| p.options.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")),
        ),
        ("iterations", p.iterations.map(|n| n.to_string())),
        ("pool_max", p.pool_max.map(|n| n.to_string())),
        ("db_latency", (!p.db_latency.is_zero()).then(|| d(p.db_latency))),
        ("suite", (!p.suite.is_empty()).then(|| p.suite.join(", "))),
        ("p99_ms", g.p99_ms.map(num)),
        ("max_failed", g.max_failed.map(|n| n.to_string())),
        ("rss_growth_mb_per_min", g.rss_growth_mb_per_min.map(num)),
        ("orchestrator_lock_timeout", p.orchestrator_lock_timeout.map(d)),
        ("worker_lock_timeout", p.worker_lock_timeout.map(d)),
    ];
    rows.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn environment_rows(e: &Environment) -> Vec<(String, String)> {
    let mut rows = vec![
        ("PostgreSQL".to_string(), e.postgres_version.clone()),
        ("database host".into(), format!("{}{}", e.db_host, if e.cloud { " (cloud/remote)" } else { "" })),
        ("machine".into(), e.machine.clone()),
        ("cpus".into(), e.cpus.to_string()),
    ];
    rows.push(("commit".into(), e.commit.clone().unwrap_or_default()));
    rows.push(("branch".into(), e.branch.clone().unwrap_or_default()));
    // An unknown value (an older report, a sweep without runs) is left out.
    rows.retain(|(_, v)| !v.is_empty() && v != "0");
    rows
}
