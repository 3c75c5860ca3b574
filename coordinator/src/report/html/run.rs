//! The HTML page of one run.

use std::io::{self, Write};

use crate::model::{LatencySummary, RunReport, Section};

use crate::report::view::fmt_ms;

use super::charts::*;
use super::*;

/// One run as an HTML page, read like a dashboard: the verdict and the
/// headline figures, then the charts over time (with the fault bands), then
/// the tables; configuration and environment last.
pub fn render_run(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let p = &r.profile;
    page_start(w, &format!("Run {} · {}", r.run_id, p.name))?;
    write!(w, "<h1>Run {} · profile {}", Esc(&r.run_id), Esc(&p.name))?;
    let (class, verdict) = if r.passed { ("pass", "PASSED") } else { ("fail", "FAILED") };
    write!(w, r#"<span class="badge {class}">{verdict}</span>"#)?;
    if r.degraded() {
        write!(w, r#"<span class="badge degraded">DEGRADED</span>"#)?;
    }
    if r.aborted.is_some() {
        write!(w, r#"<span class="badge fail">ABORTED</span>"#)?;
    }
    writeln!(w, "</h1>")?;
    writeln!(
        w,
        r#"<p class="sub">Started {} · schema {} · {} agent(s) · {} · duroxide-pg {}</p>"#,
        Esc(&r.started_at),
        Esc(&r.schema),
        r.agents.len(),
        if r.open_loop() { "open loop" } else { "closed loop" },
        Esc(&r.duroxide_pg_version)
    )?;
    if let Some(a) = &r.aborted {
        writeln!(
            w,
            r#"<p class="bad">Stopped early (--abort-on-fail): the {} gate was lost at {:.1}s ({}); every agent was stopped.</p>"#,
            Esc(&a.gate),
            a.at_s,
            Esc(&a.detail)
        )?;
    }
    super::verdict::render_headline(r, w)?;
    super::verdict::render_verdict(r, w)?;
    writeln!(w, "<h2>Over time</h2>")?;
    render_charts(r, w)?;

    writeln!(w, "<h2>Results in detail</h2>")?;
    render_verdicts(r, w)?;
    render_summary(r, w)?;
    super::scenarios::render_scenarios(r, w)?;
    render_latencies(r, w)?;
    render_stages(r, w)?;
    render_faults(r, w)?;
    if let Some(p) = &r.procedures {
        super::procedures::render(p, w)?;
    }
    super::scenarios::render_mismatches(r, w)?;

    writeln!(w, r#"<h2>Configuration and environment</h2><div class="cols">"#)?;
    kv_table(w, "Profile", &profile_rows(p))?;
    let mut env = vec![
        ("tool".to_string(), r.tool_version.clone()),
        ("duroxide".into(), r.duroxide_version.clone()),
        ("duroxide-pg".into(), r.duroxide_pg_version.clone()),
        ("provider".into(), r.provider.as_str().to_string()),
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
    page_end(w)
}

/// Every chart over time, the faults as bands on each.
fn render_charts(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let definition = if r.merged.intended_latency.is_some() { "from intended start" } else { "from start call" };
    let span = time_span(r);
    let spanning = |c: Chart, span| with_faults(spanning(c, span), r);
    figure(
        w,
        "Throughput",
        "completions per second, merged and per agent",
        &spanning(throughput_chart(r, "throughput"), span),
    )?;
    if r.stages.as_ref().is_some_and(|s| !s.open) {
        figure(w, "In flight", "the stages' target against what was in flight", &spanning(in_flight_chart(r), span))?;
    }
    figure(w, "Latency", &format!("per second, {definition}"), &spanning(latency_chart(r), span))?;
    figure(w, "Latency percentile spectrum", &format!("whole run, merged, {definition}"), &spectrum_chart(r))?;
    let db = &r.db_timeline;
    if r.provider.in_agent() {
        return writeln!(
            w,
            r#"<p class="sub">Database charts: not applicable ({} has no server statistics).</p>"#,
            r.provider.as_str()
        );
    }
    figure(
        w,
        "Database transactions",
        "commits and rollbacks per second; red: deadlocks",
        &spanning(db_commits_chart(db), span),
    )?;
    figure(w, "Database connections", "by state (pg_stat_activity)", &spanning(db_connections_chart(db), span))?;
    figure(w, "Lock waits", "backends waiting on a lock at each sample", &spanning(db_locks_chart(db), span))?;
    figure(w, "Queue depths", "duroxide-pg queues at each sample", &spanning(db_queues_chart(db), span))
}

/// Each load stage: what the plan offered and what was achieved.
fn render_stages(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let Some(s) = &r.stages else { return Ok(()) };
    let what = if s.open { "starts per second" } else { "in-flight target" };
    let rows = s.rows.iter().map(|row| {
        let cells = vec![
            crate::report::view::stage_span(row.from_s, row.to_s),
            format!("{:.1} → {:.1}", row.start_value, row.end_value),
            format!("{:.1}", row.offered),
            format!("{:.1}", row.launched_per_sec),
            format!("{:.1}", row.completed_per_sec),
            format!("{:.1}", row.mean_in_flight),
            if row.worst_p99_ms > 0.0 { fmt_ms((row.worst_p99_ms * 1000.0) as u64) } else { "-".into() },
        ];
        (None, cells)
    });
    table(
        w,
        &format!("Load stages ({what}): {}", s.plan),
        &["stage", "plan", "offered", "started/s", "completed/s", "in flight", "worst 1-s p99"],
        2,
        rows,
    )
}

/// The run's faults as bands on a chart over time.
fn with_faults(mut c: Chart, r: &RunReport) -> Chart {
    c.bands.extend(r.faults.iter().map(|f| super::svg::Band {
        from: f.event.at_s,
        to: f.event.end_s,
        color: super::COLOR_FAULT.into(),
        label: f.event.kind.clone(),
    }));
    c
}

/// Each fault: when, what it did, its impact and its recovery.
fn render_faults(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    if r.faults.is_empty() {
        return Ok(());
    }
    let p99 = |ms: f64| if ms > 0.0 { fmt_ms((ms * 1000.0) as u64) } else { "-".into() };
    let rows = r.faults.iter().map(|f| {
        let e = &f.event;
        let class = if e.error.is_some() || f.recovery_s.is_none() { Some("bad") } else { None };
        let cells = vec![
            format!("{:.1}-{:.1}s", e.at_s, e.end_s),
            e.kind.clone(),
            e.target.clone(),
            e.error.as_ref().map_or(e.detail.clone(), |err| format!("NOT APPLIED: {err}")),
            format!("{:.1} → {:.1}", f.before_orch_per_sec, f.during_orch_per_sec),
            format!("{} → {}", p99(f.before_p99_ms), p99(f.during_p99_ms)),
            f.failures.describe() + &f.by_error(),
            {
                let bar = format!("≥ {:.1} orch/s", f.recovery_orch_per_sec)
                    + &f.recovery_p99_ms.map_or(String::new(), |ms| format!(", p99 < {}", p99(ms)));
                f.recovery_s.map_or(format!("not within the run ({bar})"), |s| format!("{s:.1}s ({bar})"))
            },
        ];
        (class, cells)
    });
    table(
        w,
        "Faults (recovery: throughput back over the level of the 5 s before less its noise, p99 under 2x or its noise)",
        &[
            "when",
            "fault",
            "target",
            "what it did",
            "orch/s before → during",
            "p99 before → during",
            "failed until recovery",
            "recovery",
        ],
        4,
        rows,
    )
}

fn render_agents(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let head = [
        "agent",
        "address",
        "hostname",
        "concurrency",
        "pool",
        "state",
        "clock at Hello",
        "clock during the run",
        "RSS start→end",
        "RSS peak",
        "RSS growth",
    ];
    let rows = r.agents.iter().map(|a| {
        let m = &a.memory;
        let cells = vec![
            a.index.to_string(),
            a.address.clone(),
            a.hostname.clone(),
            a.concurrency.to_string(),
            a.pool_max.to_string(),
            if a.lost { "LOST" } else { "ok" }.to_string(),
            a.clock.map_or("-".into(), |c| format!("{:+.1} ms (±{:.1})", c.offset_ms, c.within_ms)),
            a.clock_during.map_or("-".into(), |c| format!("{:+.1} to {:+.1} ms", c.min_offset_ms, c.max_offset_ms)),
            if m.samples.is_empty() { "-".into() } else { format!("{:.1} → {:.1} MB", m.start_mb, m.end_mb) },
            if m.samples.is_empty() { "-".into() } else { format!("{:.1} MB", m.peak_mb) },
            m.growth_mb_per_min.map_or("n/a".into(), |g| format!("{g:+.2} MB/min")),
        ];
        let skewed = a.largest_clock_offset_ms().is_some_and(|o| o.abs() >= crate::model::ClockReading::NAMED_MS);
        (if a.lost || skewed { Some("bad") } else { None }, cells)
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
    if let Some(d) = &m.observation_delay {
        rows.push(row("merged", "observation delay (terminal status until seen)", d));
    }
    if let Some(l) = &m.start_lateness {
        rows.push(row("merged", "start lateness (call began minus intended start)", l));
    }
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

/// Gates, lost agents, audit, database load and comparison.
fn render_verdicts(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let rows = r.gates.iter().map(|g| {
        let cells =
            vec![g.name.clone(), g.limit.clone(), g.value.clone(), if g.passed { "pass" } else { "FAIL" }.into()];
        ((!g.passed).then_some("bad"), cells)
    });
    table(w, "Gates", &["gate", "limit", "value", "result"], 4, rows)?;
    render_lost_agents(r, w)?;
    render_audit_and_load(r, w)?;
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
            fmt_ms(r.merged.headline_latency().p99_us),
            if c.regressed { ": REGRESSION" } else { "" }
        )?;
    }
    Ok(())
}

/// The agents lost mid-run, and what became of their work.
fn render_lost_agents(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    if r.lost_agents.is_empty() {
        return Ok(());
    }
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
    table(w, "Lost agents (the run is degraded)", &head, 4, rows)
}

/// The audit, the database load and contention, and the audit's lines.
fn render_audit_and_load(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let a = &r.audit;
    writeln!(w, r#"<div class="cols">"#)?;
    let audit = [
        ("verdict", if a.passed() { "passed".to_string() } else { "FAILED".into() }),
        ("instances (launched)", format!("{} ({})", a.instances, a.launched)),
        ("as their scenario expects", a.as_expected.to_string()),
        ("terminal", a.terminal_once.to_string()),
        ("completed / failed", format!("{} / {}", a.completed, a.failed)),
        ("not terminal", a.not_terminal.to_string()),
        ("differing from their scenario", a.anomalies.to_string()),
        ("failed unexpectedly", a.unexpected_failures.to_string()),
        ("unexpected outputs", a.wrong_output.to_string()),
        ("queued messages", a.queued.to_string()),
        (
            "activity completions (expected)",
            format!("{} ({})", a.activity_completions, a.expected_activity_completions),
        ),
        ("activities executed (redeliveries)", format!("{} ({})", a.activities_executed, a.redeliveries)),
    ];
    let mut audit: Vec<(String, String)> = audit.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    if let Some(l) = &a.activity_ledger {
        audit.push(("activity ledger (kept by the agents)".into(), l.summary()));
    }
    kv_table(w, "Audit", &audit)?;
    let d = &r.db_load;
    let mut load = vec![
        (
            "commits".to_string(),
            if d.stats_resets > 0 {
                format!("{} (summed across {} statistics reset(s): a crash restart)", d.commits, d.stats_resets)
            } else {
                d.commits.to_string()
            },
        ),
        ("rollbacks".into(), d.rollbacks.to_string()),
        ("commits per orchestration".into(), format!("{:.1}", d.commits_per_orchestration)),
        ("generator's calls".into(), format!("{} ({:.1}% of commits)", d.generator_calls, d.generator_share_pct)),
        (
            format!("completion queries ({} tracking)", d.completion_source),
            format!(
                "{} ({:.1}% of commits, {:.2} per orchestration)",
                d.completion_queries, d.completion_share_pct, d.completion_queries_per_orchestration
            ),
        ),
        ("database sampling queries".into(), d.sampling_queries.to_string()),
        (
            "generator overhead beyond starts".into(),
            format!("{} ({:.1}% of commits)", d.overhead_calls, d.overhead_share_pct),
        ),
    ];
    load.extend(r.provider_errors.iter().map(|(k, n)| (format!("provider error {k}"), n.to_string())));
    kv_table(w, "Database load", &load)?;
    super::scenarios::render_contention(r, w)?;
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
    Ok(())
}
