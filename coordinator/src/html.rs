//! The HTML renderer of a run and of a capacity sweep: one self-contained
//! page each, readable offline.
//!
//! The page carries its CSS inline and its charts as inline SVG drawn by
//! [`crate::svg`]; it has no script and refers to nothing outside itself (a
//! Content-Security-Policy of `default-src 'none'` says so to the browser).
//! Every text that comes from a report (host names, gate values, settings) is
//! escaped with [`Esc`], so a report cannot inject markup into the page.
//!
//! Chart elements carry `class="chart"` and `data-chart="<name>"`, and the
//! main lines use the fixed colours below, so tests can find them in the
//! markup and in a screenshot.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Write};

use loadgen_common::config::{Profile, format_duration};
use loadgen_common::histogram::LatencySummary;
use loadgen_common::result::{DbSample, Environment, RunReport, Section, SweepReport, TimePoint};

use crate::report::fmt_ms;
use crate::svg::{Chart, Mark, Rule, Series};

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
";

/// Text escaped for HTML content and attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// One run as an HTML page: verdict, configuration, environment, results,
/// gates, audit, database load, and the charts over time.
pub fn render_run(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let p = &r.profile;
    page_start(w, &format!("Run {} · {}", r.run_id, p.name))?;
    write!(w, "<h1>Run {} · profile {}", Esc(&r.run_id), Esc(&p.name))?;
    let (class, verdict) = if r.passed { ("pass", "PASSED") } else { ("fail", "FAILED") };
    write!(w, r#"<span class="badge {class}">{verdict}</span>"#)?;
    if r.degraded() {
        write!(w, r#"<span class="badge degraded">DEGRADED</span>"#)?;
    }
    writeln!(w, "</h1>")?;
    writeln!(
        w,
        r#"<p class="sub">Started {} · schema {} · {} agent(s) · {}</p>"#,
        Esc(&r.started_at),
        Esc(&r.schema),
        r.agents.len(),
        if p.rate.is_some() { "open loop" } else { "closed loop" }
    )?;

    writeln!(w, r#"<h2>Configuration and environment</h2><div class="cols">"#)?;
    kv_table(w, "Profile", &profile_rows(p))?;
    let mut env = vec![
        ("tool".to_string(), r.tool_version.clone()),
        ("duroxide".into(), r.duroxide_version.clone()),
        ("duroxide-pg".into(), r.duroxide_pg_version.clone()),
        ("database".into(), r.database.clone()),
    ];
    env.extend(environment_rows(&r.environment));
    kv_table(w, "Environment", &env)?;
    let settings: Vec<(String, String)> = r.postgres_settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if !settings.is_empty() {
        kv_table(w, "Postgres settings", &settings)?;
    }
    writeln!(w, "</div>")?;
    render_agents(r, w)?;

    writeln!(w, "<h2>Results</h2>")?;
    render_summary(r, w)?;
    render_latencies(r, w)?;
    render_verdicts(r, w)?;

    writeln!(w, "<h2>Over time</h2>")?;
    let definition = if r.merged.intended_latency.is_some() { "from intended start" } else { "from start call" };
    figure(w, "Throughput", "completions per second, merged and per agent", &throughput_chart(r, "throughput"))?;
    figure(w, "Latency", &format!("per second, {definition}"), &latency_chart(r))?;
    figure(w, "Latency percentile spectrum", &format!("whole run, merged, {definition}"), &spectrum_chart(r))?;
    let db = &r.db_timeline;
    figure(w, "Database transactions", "commits and rollbacks per second; red: deadlocks", &db_commits_chart(db))?;
    figure(w, "Database connections", "by state (pg_stat_activity)", &db_connections_chart(db))?;
    figure(w, "Lock waits", "backends waiting on a lock at each sample", &db_locks_chart(db))?;
    figure(w, "Queue depths", "duroxide-pg queues at each sample", &db_queues_chart(db))?;
    page_end(w)
}

/// A capacity sweep as an HTML page: the steps, the knee and SLO, the
/// recommendation, and the curves; `runs` are the steps' own runs (may be
/// empty), each shown as a compact throughput chart.
pub fn render_sweep(s: &SweepReport, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    let rate = s.mode == "rate";
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
    table(w, "Steps", &head, 1, rows)?;

    writeln!(w, "<h2>Curves</h2>")?;
    figure(w, "Throughput versus p99 latency", "one point per step, in step order", &sweep_curve(s))?;
    figure(w, "Offered versus achieved", "", &sweep_offered(s))?;

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
    writeln!(w, "</div>")?;

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
    page_end(w)
}

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

/// Every profile field that is set, by its name in the profile file.
fn profile_rows(p: &Profile) -> Vec<(String, String)> {
    let d = format_duration;
    let mut rows: Vec<(&str, String)> = vec![("name", p.name.clone())];
    if !p.description.is_empty() {
        rows.push(("description", p.description.clone()));
    }
    if let Some(rate) = p.rate {
        rows.push(("rate", format!("{} orch/s (open loop)", num(rate))));
        rows.push(("arrival", p.arrival.as_str().into()));
        let cap = p.open_loop_cap().unwrap_or_default();
        rows.push(("max_in_flight", p.max_in_flight.map_or(format!("{cap} (default)"), |n| n.to_string())));
    }
    rows.extend([
        ("max_concurrent", p.max_concurrent.to_string()),
        ("duration", d(p.duration)),
        ("tasks_per_instance", p.tasks_per_instance.to_string()),
        ("activity_delay", d(p.activity_delay)),
        ("dispatchers (orch:worker)", p.dispatchers()),
        ("runtimes_per_agent", p.runtimes_per_agent.to_string()),
        ("poll_interval", d(p.poll_interval)),
        ("drain_timeout", d(p.drain_timeout)),
        ("min_orch_per_sec", num(p.min_orch_per_sec)),
    ]);
    let optional = [
        ("pool_max", p.pool_max.map(|n| n.to_string())),
        ("db_latency", (!p.db_latency.is_zero()).then(|| d(p.db_latency))),
        ("suite", (!p.suite.is_empty()).then(|| p.suite.join(", "))),
        ("p99_ms", p.p99_ms.map(num)),
        ("max_failed", p.max_failed.map(|n| n.to_string())),
        ("rss_growth_mb_per_min", p.rss_growth_mb_per_min.map(num)),
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

fn render_agents(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let head =
        ["agent", "address", "hostname", "concurrency", "pool", "state", "RSS start→end", "RSS peak", "RSS growth"];
    let rows = r.agents.iter().map(|a| {
        let m = &a.memory;
        let cells = vec![
            a.index.to_string(),
            a.address.clone(),
            a.hostname.clone(),
            a.concurrency.to_string(),
            a.pool_max.to_string(),
            if a.lost { "LOST" } else { "ok" }.to_string(),
            if m.samples.is_empty() { "-".into() } else { format!("{:.1} → {:.1} MB", m.start_mb, m.end_mb) },
            if m.samples.is_empty() { "-".into() } else { format!("{:.1} MB", m.peak_mb) },
            m.growth_mb_per_min.map_or("n/a".into(), |g| format!("{g:+.2} MB/min")),
        ];
        (a.lost.then_some("bad"), cells)
    });
    table(w, "Agents", &head, 3, rows)
}

fn latency_cells(l: &LatencySummary) -> [String; 5] {
    [fmt_ms(l.p50_us), fmt_ms(l.p90_us), fmt_ms(l.p99_us), fmt_ms(l.p999_us), fmt_ms(l.max_us)]
}

fn render_summary(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let head = [
        "agent",
        "launched",
        "completed",
        "failed",
        "start errors",
        "unfinished",
        "late",
        "dropped",
        "success %",
        "orch/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
    ];
    let row = |label: String, s: &Section| {
        let c = &s.counts;
        let mut cells = vec![
            label,
            c.launched.to_string(),
            c.completed.to_string(),
            c.failed().to_string(),
            c.start_errors.to_string(),
            c.unfinished.to_string(),
            c.late.to_string(),
            c.dropped.to_string(),
            format!("{:.2}", c.success_pct()),
            format!("{:.2}", s.orch_per_sec),
        ];
        cells.extend(latency_cells(s.headline_latency()));
        cells
    };
    let agents = r.agents.iter().map(|a| {
        let label = format!("{} {}{}", a.index, a.address, if a.lost { " (lost)" } else { "" });
        (a.lost.then_some("bad"), row(label, &a.section))
    });
    let merged = std::iter::once((Some("merged"), row("merged".into(), &r.merged)));
    let caption = if r.merged.intended_latency.is_some() {
        "Per agent and merged; latency from each orchestration's intended start (open loop)"
    } else {
        "Per agent and merged; latency from the start call to the recorded completion"
    };
    table(w, caption, &head, 1, agents.chain(merged))
}

/// Every latency definition side by side, so none is mistaken for another.
fn render_latencies(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    const INTENDED: &str = "from intended start (open loop, no coordinated omission)";
    const E2E: &str = "from start call (end-to-end, e2e_latency)";
    let m = &r.merged;
    let row = |scope: &str, def: &str, l: &LatencySummary| {
        let mut cells = vec![scope.to_string(), def.to_string(), l.count.to_string()];
        cells.extend(latency_cells(l));
        cells.push(fmt_ms(l.mean_us as u64));
        (None, cells)
    };
    let mut rows = Vec::new();
    if let Some(l) = &m.intended_latency {
        rows.push(row("merged", INTENDED, l));
    }
    rows.push(row("merged", E2E, &m.e2e_latency));
    rows.push(row("merged", "seen by the completion query (observed)", &m.observed_latency));
    rows.push(row("merged", "the start call itself", &m.start_latency));
    if m.intended_latency.is_some() {
        for a in &r.agents {
            let scope = format!("agent {}", a.index);
            if let Some(l) = &a.section.intended_latency {
                rows.push(row(&scope, INTENDED, l));
            }
            rows.push(row(&scope, E2E, &a.section.e2e_latency));
        }
    }
    let head = ["scope", "latency definition", "samples", "p50", "p90", "p99", "p99.9", "max", "mean"];
    table(w, "Latency definitions", &head, 2, rows.into_iter())
}

/// Gates, warnings, lost agents, audit, database load and comparison.
fn render_verdicts(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let rows = r.gates.iter().map(|g| {
        let cells =
            vec![g.name.clone(), g.limit.clone(), g.value.clone(), if g.passed { "pass" } else { "FAIL" }.into()];
        ((!g.passed).then_some("bad"), cells)
    });
    table(w, "Gates", &["gate", "limit", "value", "result"], 4, rows)?;
    if !r.warnings.is_empty() {
        writeln!(w, "<p><b>Warnings</b></p><ul>")?;
        for warning in &r.warnings {
            writeln!(w, r#"<li class="bad">{}</li>"#, Esc(warning))?;
        }
        writeln!(w, "</ul>")?;
    }
    if !r.lost_agents.is_empty() {
        let head = [
            "agent",
            "address",
            "lost at",
            "reason",
            "launched",
            "completed",
            "in flight",
            "in db",
            "completed in db",
            "by others",
            "failed in db",
            "still running",
        ];
        let rows = r.lost_agents.iter().map(|l| {
            let cells = vec![
                l.index.to_string(),
                l.address.clone(),
                format!("{:.1} s", l.at_s),
                l.reason.clone(),
                l.last_reported.launched.to_string(),
                l.last_reported.completed.to_string(),
                l.in_flight_at_loss.to_string(),
                l.instances_in_db.to_string(),
                l.completed_in_db.to_string(),
                l.completed_by_others.to_string(),
                l.failed_in_db.to_string(),
                l.still_running.to_string(),
            ];
            (Some("bad"), cells)
        });
        table(w, "Lost agents (the run is degraded)", &head, 4, rows)?;
    }
    let a = &r.audit;
    writeln!(w, r#"<div class="cols">"#)?;
    let audit = [
        ("verdict", if a.passed() { "passed".to_string() } else { "FAILED".into() }),
        ("instances (launched)", format!("{} ({})", a.instances, a.launched)),
        ("terminal exactly once", a.terminal_once.to_string()),
        ("completed / failed", format!("{} / {}", a.completed, a.failed)),
        ("not terminal", a.not_terminal.to_string()),
        ("other than one execution", a.anomalies.to_string()),
        ("unexpected outputs", a.wrong_output.to_string()),
        ("queued messages", a.queued.to_string()),
        (
            "activity completions (expected)",
            format!("{} ({})", a.activity_completions, a.expected_activity_completions),
        ),
        ("activities executed (redeliveries)", format!("{} ({})", a.activities_executed, a.redeliveries)),
    ];
    kv_table(w, "Audit", &audit.map(|(k, v)| (k.to_string(), v)))?;
    let d = &r.db_load;
    let mut load = vec![
        ("commits".to_string(), d.commits.to_string()),
        ("rollbacks".into(), d.rollbacks.to_string()),
        ("commits per orchestration".into(), format!("{:.1}", d.commits_per_orchestration)),
        ("generator's calls".into(), format!("{} ({:.1}% of commits)", d.generator_calls, d.generator_share_pct)),
        ("completion queries".into(), format!("{} ({:.1}% of commits)", d.completion_queries, d.completion_share_pct)),
    ];
    load.extend(r.provider_errors.iter().map(|(k, n)| (format!("provider error {k}"), n.to_string())));
    kv_table(w, "Database load", &load)?;
    writeln!(w, "</div>")?;
    if !(a.problems.is_empty() && a.notes.is_empty()) {
        writeln!(w, "<ul>")?;
        for p in &a.problems {
            writeln!(w, r#"<li class="bad">audit: {}</li>"#, Esc(p))?;
        }
        for n in &a.notes {
            writeln!(w, "<li>audit note: {}</li>", Esc(n))?;
        }
        writeln!(w, "</ul>")?;
    }
    if let Some(c) = &r.comparison {
        writeln!(
            w,
            "<p>Compared with {}: throughput {:+.1}% ({:.2} → {:.2} orch/s), p99 {:+.1}% ({} → {}){}.</p>",
            Esc(&c.against),
            c.throughput_change_pct,
            c.baseline_orch_per_sec,
            r.merged.orch_per_sec,
            c.p99_change_pct,
            fmt_ms(c.baseline_p99_us),
            fmt_ms(r.merged.e2e_latency.p99_us),
            if c.regressed { ": REGRESSION" } else { "" }
        )?;
    }
    Ok(())
}

fn agent_label(r: &RunReport, i: usize) -> String {
    match r.agents.get(i) {
        Some(a) if !a.hostname.is_empty() => format!("agent {} ({})", a.index, a.hostname),
        Some(a) => format!("agent {} ({})", a.index, a.address),
        None => format!("agent {i}"),
    }
}

fn time_series(points: &[TimePoint], f: impl Fn(&TimePoint) -> f64) -> Vec<(f64, f64)> {
    points.iter().map(|p| (p.t_s, f(p))).collect()
}

/// A latency of 0 means nothing completed in that second: a gap, not a dip.
fn latency_series(points: &[TimePoint], f: impl Fn(&TimePoint) -> f64) -> Vec<(f64, f64)> {
    time_series(points, |p| if p.completed == 0 && f(p) == 0.0 { f64::NAN } else { f(p) })
}

fn throughput_chart(r: &RunReport, name: &str) -> Chart {
    let mut c = Chart::new(name, "Throughput over time", "time since start (s)", "completions per second");
    c.series.push(Series::line("merged orch/s", COLOR_MERGED, time_series(&r.timeline.merged, |p| p.orch_per_sec)));
    for (i, points) in r.timeline.agents.iter().enumerate() {
        let s = Series::line(agent_label(r, i), PALETTE[i % PALETTE.len()], time_series(points, |p| p.orch_per_sec));
        c.series.push(s.dashed());
    }
    c
}

fn latency_chart(r: &RunReport) -> Chart {
    let mut c = Chart::new("latency", "Latency over time", "time since start (s)", "latency (ms)");
    let m = &r.timeline.merged;
    c.series.push(Series::line("merged p50", COLOR_P50, latency_series(m, |p| p.p50_ms)));
    c.series.push(Series::line("merged p99", COLOR_MERGED, latency_series(m, |p| p.p99_ms)));
    c.series.push(Series::line("merged max", COLOR_MAX, latency_series(m, |p| p.max_ms)));
    for (i, points) in r.timeline.agents.iter().enumerate() {
        let label = format!("{} p99", agent_label(r, i));
        c.series.push(Series::line(label, PALETTE[i % PALETTE.len()], latency_series(points, |p| p.p99_ms)).dashed());
    }
    c
}

/// Percentile p (in percent) on the axis of 1/(1-p): 90% -> 1, 99% -> 2, ...
fn percentile_x(p: f64) -> f64 {
    let tail = (1.0 - p / 100.0).clamp(1e-7, 1.0);
    -tail.log10()
}

fn spectrum_chart(r: &RunReport) -> Chart {
    let mut c = Chart::new("spectrum", "Latency percentile spectrum", "percentile", "latency (ms)");
    let points: Vec<(f64, f64)> = r.spectrum.iter().map(|s| (percentile_x(s.percentile), s.latency_ms)).collect();
    let reach = points.iter().map(|p| p.0).fold(5.0f64, f64::max).ceil() as usize;
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%", "99.99999%"];
    c.x_ticks = Some(labels.iter().take(reach + 1).enumerate().map(|(i, l)| (i as f64, l.to_string())).collect());
    c.series.push(Series::line("merged latency at percentile", COLOR_SPECTRUM, points));
    c
}

fn db_series(db: &[DbSample], f: impl Fn(&DbSample) -> f64) -> Vec<(f64, f64)> {
    db.iter().map(|s| (s.t_s, f(s))).collect()
}

fn db_commits_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-commits", "Database transactions", "time since start (s)", "transactions per second");
    c.series.push(Series::line("commits/s", COLOR_COMMITS, db_series(db, |s| s.commits_per_sec)));
    c.series.push(Series::line("rollbacks/s", PALETTE[0], db_series(db, |s| s.rollbacks_per_sec)));
    let deadlocks: u64 = db.iter().map(|s| s.deadlocks).sum();
    if deadlocks > 0 {
        // A legend entry only: the deadlocks themselves are the marks.
        c.series.push(Series::line(format!("deadlocks ({deadlocks})"), COLOR_MAX, Vec::new()));
    }
    c.marks.extend(db.iter().filter(|s| s.deadlocks > 0).map(|s| Mark {
        x: s.t_s,
        y: s.commits_per_sec,
        color: COLOR_MAX.into(),
        label: format!("deadlock ×{}", s.deadlocks),
        vline: true,
    }));
    c
}

fn db_connections_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-connections", "Database connections by state", "time since start (s)", "connections");
    let states: BTreeSet<&String> = db.iter().flat_map(|s| s.connections.keys()).collect();
    for (i, state) in states.into_iter().enumerate() {
        let points = db_series(db, |s| s.connections.get(state).copied().unwrap_or(0) as f64);
        c.series.push(Series::line(state.clone(), PALETTE[i % PALETTE.len()], points));
    }
    c
}

fn db_locks_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-locks", "Lock waits", "time since start (s)", "waiting backends");
    c.series.push(Series::line("lock waits", COLOR_MAX, db_series(db, |s| s.lock_waits as f64)));
    c.series.push(Series::line("advisory lock waits", PALETTE[3], db_series(db, |s| s.advisory_lock_waits as f64)));
    c
}

fn db_queues_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-queues", "Queue depths", "time since start (s)", "queued messages");
    c.series.push(Series::line("orchestrator queue", PALETTE[3], db_series(db, |s| s.orchestrator_queue as f64)));
    c.series.push(Series::line("worker queue", PALETTE[4], db_series(db, |s| s.worker_queue as f64)));
    c.series.push(Series::line("timer queue", PALETTE[5], db_series(db, |s| s.timer_queue as f64)));
    c
}

fn knee_mark(s: &SweepReport, x: impl Fn(usize) -> f64, y: impl Fn(usize) -> f64) -> Option<Mark> {
    let k = s.knee.filter(|&k| k < s.steps.len())?;
    Some(Mark { x: x(k), y: y(k), color: COLOR_KNEE.into(), label: "knee".into(), vline: false })
}

fn sweep_curve(s: &SweepReport) -> Chart {
    let mut c = Chart::new("sweep-curve", "Throughput versus p99 latency", "achieved orch/s", "p99 latency (ms)");
    c.plot_height = 320.0;
    let points = s.steps.iter().map(|st| (st.achieved_orch_per_sec, st.p99_ms)).collect();
    let labels = s.steps.iter().enumerate().map(|(i, st)| format!("#{} offered {}", i + 1, num(st.offered))).collect();
    c.series.push(Series::line("p99 by step", COLOR_SWEEP, points).dots().labelled(labels));
    if s.slo_p99_ms > 0.0 {
        let label = format!("SLO p99 ≤ {} ms", num(s.slo_p99_ms));
        c.rules.push(Rule { y: s.slo_p99_ms, color: COLOR_MAX.into(), label });
    }
    c.marks.extend(knee_mark(s, |k| s.steps[k].achieved_orch_per_sec, |k| s.steps[k].p99_ms));
    c
}

fn sweep_offered(s: &SweepReport) -> Chart {
    let rate = s.mode == "rate";
    let x_label = if rate { "offered (orchestrations started per second)" } else { "offered (in-flight budget)" };
    let mut c = Chart::new("sweep-offered", "Offered versus achieved", x_label, "achieved orch/s");
    let points = s.steps.iter().map(|st| (st.offered, st.achieved_orch_per_sec)).collect();
    c.series.push(Series::line("achieved orch/s", COLOR_MERGED, points).dots());
    if rate && !s.steps.is_empty() {
        let top = s.steps.iter().map(|st| st.offered).fold(0.0, f64::max);
        c.series.push(Series::line("achieved = offered", PALETTE[1], vec![(0.0, 0.0), (top, top)]).dashed());
    }
    c.marks.extend(knee_mark(s, |k| s.steps[k].offered, |k| s.steps[k].achieved_orch_per_sec));
    c
}
