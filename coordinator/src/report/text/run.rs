//! The text summary of one run: configuration, per-agent and merged table,
//! per-scenario table, latency definitions, database load and contention,
//! memory, comparison, the audit's findings and the gates.

use std::io::{self, Write};

use crate::model::{RunReport, Section};
use crate::report::view::{describe_config, fmt_ms, latency_cells, latency_line, latency_phrase};

/// Agents shown by name in the table; past this, the slowest few and a summary row.
const AGENT_ROWS: usize = 16;

fn header(w: &mut dyn Write, first: &str) -> io::Result<()> {
    writeln!(
        w,
        "{:<22} {:>8} {:>9} {:>6} {:>5} {:>6} {:>5} {:>6} {:>6} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        first,
        "launched",
        "completed",
        "failed",
        "infra",
        "config",
        "app",
        "poison",
        "st-err",
        "unfin",
        "success%",
        "orch/s",
        "act/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max"
    )
}

fn row(w: &mut dyn Write, label: &str, s: &Section) -> io::Result<()> {
    let c = &s.counts;
    writeln!(
        w,
        "{:<22} {:>8} {:>9} {:>6} {:>5} {:>6} {:>5} {:>6} {:>6} {:>6} {:>8.2} {:>8.2} {:>9.1} {}",
        label,
        c.launched,
        c.completed,
        c.failed(),
        c.failed_infrastructure,
        c.failed_configuration,
        c.failed_application,
        c.failed_poison,
        c.start_errors,
        c.unfinished,
        c.success_pct(),
        s.orch_per_sec,
        s.activities_per_sec,
        latency_cells(s.headline_latency())
    )
}

/// The human summary of a run.
pub fn render(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)?;
    if r.provider.in_agent() {
        writeln!(w, "Run {} on {} ({}), duroxide {}", r.run_id, r.database, r.provider.as_str(), r.duroxide_version)?;
    } else {
        writeln!(
            w,
            "Run {} on schema {} ({}), duroxide {} / duroxide-pg {}",
            r.run_id, r.schema, r.database, r.duroxide_version, r.duroxide_pg_version
        )?;
    }
    writeln!(
        w,
        "Profile {}: {}, seed {}, {} agent(s)",
        r.profile.name,
        describe_config(r),
        r.workload.seed,
        r.agents.len()
    )?;
    writeln!(w)?;
    header(w, "agent")?;
    let mut shown: Vec<&crate::model::AgentReport> = r.agents.iter().collect();
    if shown.len() > AGENT_ROWS {
        // Many agents: the slowest (highest headline p99) by name, then the rest summed up.
        shown.sort_by_key(|a| std::cmp::Reverse(a.section.headline_latency().p99_us));
        shown.truncate(AGENT_ROWS / 2);
    }
    for a in &shown {
        let label = format!("{} {}{}", a.index, a.address, if a.lost { " LOST" } else { "" });
        row(w, &label, &a.section)?;
    }
    if shown.len() < r.agents.len() {
        writeln!(
            w,
            "  ... {} more agent(s) (the {} slowest by p99 shown; all in --json and --report)",
            r.agents.len() - shown.len(),
            shown.len()
        )?;
    }
    row(w, "merged", &r.merged)?;
    super::audit::render_clocks(r, w)?;
    writeln!(w)?;
    render_scenarios(r, w)?;
    render_degraded(r, w)?;
    render_latency_definitions(r, w)?;
    render_stages(r, w)?;
    render_faults(r, w)?;
    render_database(r, w)?;
    render_memory(r, w)?;
    render_comparison(r, w)?;
    super::audit::render_audit_findings(r, w)?;
    writeln!(w)?;
    writeln!(w, "Gates: {}", if r.passed { "PASSED" } else { "FAILED" })?;
    for g in &r.gates {
        writeln!(w, "  [{}] {}: {} (limit {})", if g.passed { "ok" } else { "FAIL" }, g.name, g.value, g.limit)?;
    }
    for warning in &r.warnings {
        writeln!(w, "  [warn] {warning}")?;
    }
    Ok(())
}

/// One row per scenario (with what only that scenario counts), when the
/// workload has more than one or a scenario has facts to tell.
fn render_scenarios(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let telling = r.scenarios.iter().any(|s| !s.facts.is_empty() || !s.history_latencies.is_empty());
    if r.scenarios.len() < 2 && !telling {
        return Ok(());
    }
    header(w, "scenario")?;
    for s in &r.scenarios {
        row(w, &s.name, &s.section)?;
    }
    for s in &r.scenarios {
        let mut parts: Vec<String> = Vec::new();
        if s.section.counts.expected_failures > 0 || s.section.counts.unexpected_outcomes > 0 {
            parts.push(format!(
                "{} failed by design, {} completed where a failure was designed",
                s.section.counts.expected_failures, s.section.counts.unexpected_outcomes
            ));
        }
        for h in &s.history_latencies {
            parts.push(format!("{} ({} samples) {}", h.name, h.latency.count, latency_phrase(&h.latency)));
        }
        for (k, v) in &s.facts {
            parts.push(format!("{k} {v}"));
        }
        let a = &s.audit;
        if a.instances > 0 {
            let children = if a.expected_children > 0 {
                format!(", {} of {} children", a.children, a.expected_children)
            } else {
                String::new()
            };
            parts.push(format!("audit {} of {} as expected{children}", a.as_expected, a.instances));
        }
        if !parts.is_empty() {
            writeln!(w, "  {}: {}", s.name, parts.join("; "))?;
        }
    }
    writeln!(w)
}

fn render_degraded(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    if r.lost_agents.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "{}: {} agent(s) lost. A lost agent's row counts its orchestrations as the database shows them; its latencies are what it reported.",
        if r.degraded() { "DEGRADED" } else { "As the fault schedule planned" },
        r.lost_agents.len()
    )?;
    for l in &r.lost_agents {
        let c = &l.last_reported;
        writeln!(
            w,
            "  agent {} ({}) lost at {:.1}s: {}. Its last report: {} launched, {} completed, {} in flight. In the database: {} instances, {} completed ({} after the loss, by the other runtimes), {} failed, {} not terminal.",
            l.index,
            l.address,
            l.at_s,
            l.reason,
            c.launched,
            c.completed,
            l.in_flight_at_loss,
            l.instances_in_db,
            l.completed_in_db,
            l.completed_by_others,
            l.failed_in_db,
            l.still_running
        )?;
    }
    writeln!(w)
}

fn render_latency_definitions(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let m = &r.merged;
    if let Some(i) = &m.intended_latency {
        writeln!(
            w,
            "Open loop: latency p50..max above runs from each orchestration's intended start (its scheduled time, so it includes any wait to be started) until the runtime recorded completion ({} samples, mean {}).",
            i.count,
            fmt_ms(i.mean_us as u64)
        )?;
        writeln!(
            w,
            "  Late starts (issued > {}ms after their time): {}; dropped (in-flight cap {} reached): {}.",
            loadgen_common::tally::LATE_AFTER_MS,
            m.counts.late,
            r.profile.open_loop_cap().unwrap_or(0),
            m.counts.dropped
        )?;
        if let Some(l) = &m.start_lateness {
            writeln!(
                w,
                "  Start lateness (the call began minus its intended start, the generator's own delay; {} starts): {}.",
                l.count,
                latency_line(l)
            )?;
        }
        writeln!(w, "  From the start call instead (the closed-loop definition): {}.", latency_line(&m.e2e_latency))?;
    } else {
        writeln!(
            w,
            "Latency p50..max above: start call issued until the runtime recorded completion ({} samples, mean {}, {} clamped for clock skew).",
            m.e2e_latency.count,
            fmt_ms(m.e2e_latency.mean_us as u64),
            m.counts.latency_clamped
        )?;
    }
    if m.counts.saturated > 0 {
        writeln!(w, "  {} sample(s) were above the histograms' 1 h bound and recorded as 1 h.", m.counts.saturated)?;
    }
    writeln!(
        w,
        "Seen by the generator's completion query: {}. Start call: {}.",
        latency_phrase(&m.observed_latency),
        latency_phrase(&m.start_latency)
    )?;
    if let Some(d) = &m.observation_delay {
        writeln!(w, "Observation delay (terminal status until the agent learned of it): {}.", latency_phrase(d))?;
    }
    Ok(())
}

/// Each fault: when, what it did, the impact and the recovery time.
fn render_faults(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    if r.faults.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "Faults (the level before each is the median second of its 5 seconds before; recovery: back over that level less its noise, p99 under 2x or its noise):"
    )?;
    for f in &r.faults {
        let e = &f.event;
        let what = match &e.error {
            Some(err) => format!("NOT APPLIED: {err}"),
            None => e.detail.clone(),
        };
        let p99 = |ms: f64| if ms > 0.0 { fmt_ms((ms * 1000.0) as u64) } else { "-".into() };
        let bar = match f.recovery_p99_ms {
            Some(ms) => format!("{:.1} orch/s and p99 under {}", f.recovery_orch_per_sec, p99(ms)),
            None => format!("{:.1} orch/s", f.recovery_orch_per_sec),
        };
        let recovery = match f.recovery_s {
            Some(s) => format!("recovered {s:.1}s after it ended (back to {bar})"),
            None => format!("not recovered within the run (never back to {bar})"),
        };
        writeln!(
            w,
            "  {:.1}-{:.1}s {} on {}: {what}; {:.1} -> {:.1} orch/s, p99 {} -> {}; failed until recovery: {}; {recovery}.",
            e.at_s,
            e.end_s,
            e.kind,
            e.target,
            f.before_orch_per_sec,
            f.during_orch_per_sec,
            p99(f.before_p99_ms),
            p99(f.during_p99_ms),
            f.failures.describe() + &f.by_error(),
        )?;
    }
    Ok(())
}

/// Each stage's offered load against what was achieved.
fn render_stages(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let Some(s) = &r.stages else { return Ok(()) };
    let unit = if s.open { "/s" } else { " in flight" };
    writeln!(w, "Load stages ({}): {}", if s.open { "starts per second" } else { "in-flight target" }, s.plan)?;
    writeln!(
        w,
        "  {:<13} {:>17} {:>12} {:>11} {:>11} {:>10} {:>11}",
        "stage", "plan", "offered", "started/s", "done/s", "in flight", "worst p99"
    )?;
    for row in &s.rows {
        let span = crate::report::view::stage_span(row.from_s, row.to_s);
        let plan = format!("{:.1}->{:.1}{unit}", row.start_value, row.end_value);
        let plan = if s.open { plan } else { format!("{:.0}->{:.0}", row.start_value, row.end_value) };
        writeln!(
            w,
            "  {:<13} {:>17} {:>12} {:>11.1} {:>11.1} {:>10.1} {:>11}",
            span,
            plan,
            format!("{:.1}{}", row.offered, if s.open { "/s" } else { "" }),
            row.launched_per_sec,
            row.completed_per_sec,
            row.mean_in_flight,
            if row.worst_p99_ms > 0.0 { fmt_ms((row.worst_p99_ms * 1000.0) as u64) } else { "-".into() }
        )?;
    }
    writeln!(w, "  (offered and achieved over the same whole seconds: those whose middle falls in the stage)")?;
    Ok(())
}

fn render_database(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let d = &r.db_load;
    if r.provider.in_agent() {
        // No server: nothing to sample, count or time per procedure.
        let retries: Vec<String> = r.contention.provider_retries.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            w,
            "Database: not applicable ({} has no server statistics); completion tracking by the agent, one batched query on the store per tick: {} polls ({:.2} per orchestration); provider errors and retries: {}.",
            r.provider.as_str(),
            d.completion_queries,
            d.completion_queries_per_orchestration,
            if retries.is_empty() { "none".to_string() } else { retries.join(", ") }
        )?;
        return Ok(());
    }
    writeln!(
        w,
        "Database: {} commits ({:.1} per orchestration), {} rollbacks; generator's own calls {} ({:.1}% of commits).",
        d.commits, d.commits_per_orchestration, d.rollbacks, d.generator_calls, d.generator_share_pct,
    )?;
    if d.stats_resets > 0 {
        writeln!(
            w,
            "  The server's statistics were reset {} time(s) during the run (a crash restart): commits are summed over the segments between resets, and miss up to a second before each.",
            d.stats_resets
        )?;
    }
    writeln!(
        w,
        "Generator overhead beyond its starts: {} queries ({:.1}% of commits): completion tracking ({}) {} = {:.2} per orchestration, database sampling {}.",
        d.overhead_calls,
        d.overhead_share_pct,
        d.completion_source,
        d.completion_queries,
        d.completion_queries_per_orchestration,
        d.sampling_queries
    )?;
    let c = &r.contention;
    let retries: Vec<String> = c.provider_retries.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(
        w,
        "Contention: {} deadlock(s); lock waits peak {} (mean {:.1}), of which advisory peak {} (mean {:.1}), over {} sample(s); provider errors and retries: {}.",
        c.deadlocks,
        c.peak_lock_waits,
        c.mean_lock_waits,
        c.peak_advisory_lock_waits,
        c.mean_advisory_lock_waits,
        c.samples,
        if retries.is_empty() { "none".to_string() } else { retries.join(", ") }
    )?;
    if let Some(p) = &r.procedures {
        super::procedures::render(p, w)?;
    }
    let m = &r.merged.counts;
    if m.status_query_errors > 0 || m.start_errors > 0 {
        writeln!(
            w,
            "Generator calls that failed: start calls {}; completion queries {}.",
            m.start_errors, m.status_query_errors
        )?;
    }
    Ok(())
}

/// Memory of each agent: start, end, peak, growth, and (for runs of a minute
/// or more) the curve at ten points.
fn render_memory(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    if r.agents.iter().all(|a| a.memory.samples.is_empty()) {
        return Ok(());
    }
    writeln!(w, "Agent memory (RSS) and CPU:")?;
    for a in r.agents.iter().take(AGENT_ROWS) {
        let m = &a.memory;
        let growth = m.growth_mb_per_min.map_or("n/a (short run)".to_string(), |g| format!("{g:+.2} MB/min"));
        write!(
            w,
            "  agent {}: {:.1} -> {:.1} MB, peak {:.1} MB, growth {growth}, CPU {:.1} s",
            a.index, m.start_mb, m.end_mb, m.peak_mb, a.cpu_s
        )?;
        if m.samples.last().is_some_and(|s| s.t_s >= 60.0) {
            let points: Vec<String> = (0..10)
                .filter_map(|i| m.samples.get(i * (m.samples.len() - 1) / 9))
                .map(|s| format!("{:.0}s:{:.1}", s.t_s, s.rss_mb))
                .collect();
            write!(w, "; over time (s:MB) {}", points.join(" "))?;
        }
        writeln!(w)?;
    }
    let rest = r.agents.get(AGENT_ROWS..).unwrap_or_default();
    if !rest.is_empty() {
        writeln!(
            w,
            "  {} more agent(s): peak RSS up to {:.1} MB, CPU {:.1} s together (each in the JSON and HTML)",
            rest.len(),
            rest.iter().map(|a| a.memory.peak_mb).fold(0.0, f64::max),
            rest.iter().map(|a| a.cpu_s).sum::<f64>()
        )?;
    }
    let c = &r.coordinator;
    if c.wall_s > 0.0 {
        writeln!(
            w,
            "Coordinator: {:.1} CPU s over {:.1} s of following the agents ({:.1}% of one core), RSS {:.1} MB.",
            c.cpu_s,
            c.wall_s,
            c.cpu_s * 100.0 / c.wall_s,
            c.rss_mb
        )?;
    }
    Ok(())
}

fn render_comparison(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let Some(c) = &r.comparison else { return Ok(()) };
    writeln!(
        w,
        "Compared with {}: throughput {:+.1}% ({:.2} -> {:.2} orch/s), p99 {:+.1}% ({} -> {}){}.",
        c.against,
        c.throughput_change_pct,
        c.baseline_orch_per_sec,
        r.merged.orch_per_sec,
        c.p99_change_pct,
        fmt_ms(c.baseline_p99_us),
        fmt_ms(r.merged.headline_latency().p99_us),
        if c.regressed { ": REGRESSION" } else { "" }
    )?;
    if !c.config_differences.is_empty() {
        writeln!(w, "  (configuration differs from that run: {})", c.config_differences.join(", "))?;
    }
    Ok(())
}
