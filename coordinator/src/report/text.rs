//! Renderers of the one result model: a text summary table and JSON. Each
//! takes the report and a writer, so tests render into memory.

use std::io::{self, Write};

use loadgen_common::config::{Profile, format_duration};
use loadgen_common::histogram::LatencySummary;
use loadgen_common::result::{Audit, RunReport, Section, SuiteReport};

/// Microseconds as milliseconds with one decimal ("12.3ms"), or "-" for none.
pub fn fmt_ms(us: u64) -> String {
    if us == 0 { "-".into() } else { format!("{:.1}ms", us as f64 / 1000.0) }
}

/// One line that says what a profile asks for.
fn describe_config(p: &Profile) -> String {
    let load = match p.rate {
        None => format!("{} in flight", p.max_concurrent),
        Some(rate) => format!(
            "open loop {} {} (at most {} in flight)",
            loadgen_common::config::format_rate(rate),
            p.arrival.as_str(),
            p.open_loop_cap().unwrap_or(p.max_concurrent)
        ),
    };
    format!(
        "{load}, {} of load, fanout {} x {}, dispatchers {} x {} runtime(s)/agent, poll {}, pool {}, db latency {}",
        format_duration(p.duration),
        p.tasks_per_instance,
        format_duration(p.activity_delay),
        p.dispatchers(),
        p.runtimes_per_agent,
        format_duration(p.poll_interval),
        p.pool_max.map_or("default".into(), |n| n.to_string()),
        if p.db_latency.is_zero() { "none".into() } else { format_duration(p.db_latency) }
    )
}

fn latency_cells(l: &LatencySummary) -> String {
    format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9}",
        fmt_ms(l.p50_us),
        fmt_ms(l.p90_us),
        fmt_ms(l.p99_us),
        fmt_ms(l.p999_us),
        fmt_ms(l.max_us)
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

/// The human summary: configuration, per-agent and merged table, start-call
/// latency, database load, the database check and the gates.
pub fn render_text(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let p = &r.profile;
    writeln!(w)?;
    writeln!(
        w,
        "Run {} on schema {} ({}), duroxide {} / duroxide-pg {}",
        r.run_id, r.schema, r.database, r.duroxide_version, r.duroxide_pg_version
    )?;
    writeln!(w, "Profile {}: {}, {} agent(s)", p.name, describe_config(p), r.agents.len())?;
    writeln!(w)?;
    writeln!(
        w,
        "{:<22} {:>8} {:>9} {:>6} {:>5} {:>6} {:>5} {:>6} {:>6} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "agent",
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
    )?;
    for a in &r.agents {
        let label = format!("{} {}{}", a.index, a.address, if a.lost { " LOST" } else { "" });
        row(w, &label, &a.section)?;
    }
    row(w, "merged", &r.merged)?;
    writeln!(w)?;
    if r.degraded() {
        writeln!(
            w,
            "DEGRADED: {} agent(s) lost. A lost agent's row counts its orchestrations as the database shows them; its latencies are what it reported.",
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
        writeln!(w)?;
    }
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
            loadgen_common::result::LATE_AFTER_MS,
            m.counts.late,
            r.profile.open_loop_cap().unwrap_or(0),
            m.counts.dropped
        )?;
        writeln!(
            w,
            "  From the start call instead (the closed-loop definition): p50 {} p90 {} p99 {} p99.9 {} max {}.",
            fmt_ms(m.e2e_latency.p50_us),
            fmt_ms(m.e2e_latency.p90_us),
            fmt_ms(m.e2e_latency.p99_us),
            fmt_ms(m.e2e_latency.p999_us),
            fmt_ms(m.e2e_latency.max_us)
        )?;
    } else {
        writeln!(
            w,
            "Latency p50..max above: start call issued until the runtime recorded completion ({} samples, mean {}, {} clamped for clock skew).",
            m.e2e_latency.count,
            fmt_ms(m.e2e_latency.mean_us as u64),
            m.counts.latency_clamped
        )?;
    }
    writeln!(
        w,
        "Seen by the generator's completion query: p50 {} p99 {} max {}. Start call: p50 {} p99 {} max {}.",
        fmt_ms(m.observed_latency.p50_us),
        fmt_ms(m.observed_latency.p99_us),
        fmt_ms(m.observed_latency.max_us),
        fmt_ms(m.start_latency.p50_us),
        fmt_ms(m.start_latency.p99_us),
        fmt_ms(m.start_latency.max_us)
    )?;
    let d = &r.db_load;
    writeln!(
        w,
        "Database: {} commits ({:.1} per orchestration), {} rollbacks; generator's own calls {} ({:.1}% of commits), of which completion queries {} ({:.1}%).",
        d.commits,
        d.commits_per_orchestration,
        d.rollbacks,
        d.generator_calls,
        d.generator_share_pct,
        d.completion_queries,
        d.completion_share_pct
    )?;
    if !r.provider_errors.is_empty() || m.counts.status_query_errors > 0 || m.counts.start_errors > 0 {
        let errors: Vec<String> = r.provider_errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            w,
            "Errors met and retried: provider calls by the runtimes [{}]; start calls {}; completion queries {}.",
            if errors.is_empty() { "none".into() } else { errors.join(", ") },
            m.counts.start_errors,
            m.counts.status_query_errors
        )?;
    }
    render_memory(r, w)?;
    if let Some(c) = &r.comparison {
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
    }
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

/// Memory of each agent: start, end, peak, growth, and (for runs of a minute
/// or more) the curve at ten points.
fn render_memory(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    if r.agents.iter().all(|a| a.memory.samples.is_empty()) {
        return Ok(());
    }
    writeln!(w, "Agent memory (RSS):")?;
    for a in &r.agents {
        let m = &a.memory;
        let growth = m.growth_mb_per_min.map_or("n/a (short run)".to_string(), |g| format!("{g:+.2} MB/min"));
        write!(
            w,
            "  agent {}: {:.1} -> {:.1} MB, peak {:.1} MB, growth {growth}",
            a.index, m.start_mb, m.end_mb, m.peak_mb
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
    Ok(())
}

/// A correctness audit on its own (`coordinator audit`).
pub fn render_audit(schema: &str, a: &Audit, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "Audit of schema {schema}: {}", if a.passed() { "PASSED" } else { "FAILED" })?;
    writeln!(
        w,
        "  instances {} (launched {}), terminal exactly once {}, completed {}, failed {}, not terminal {}, other than one execution {}",
        a.instances,
        if a.launched > 0 { a.launched.to_string() } else { "unknown".into() },
        a.terminal_once,
        a.completed,
        a.failed,
        a.not_terminal,
        a.anomalies
    )?;
    writeln!(
        w,
        "  unexpected outputs {}, queued messages {}, activity completions {} (expected {}), executed {}, redeliveries {}",
        a.wrong_output,
        a.queued,
        a.activity_completions,
        a.expected_activity_completions,
        a.activities_executed,
        a.redeliveries
    )?;
    for p in &a.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    for n in &a.notes {
        writeln!(w, "  [note] {n}")?;
    }
    Ok(())
}

/// The comparison table of a suite: one row per run, then the overall verdict.
pub fn render_suite(profile: &str, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)?;
    writeln!(w, "Suite {profile}: one run per dispatcher combination, each on a fresh schema")?;
    writeln!(
        w,
        "{:<12} {:<8} {:>9} {:>6} {:>5} {:>6} {:>5} {:>9} {:>9} {:>12} {:>9} {:>9}",
        "Provider",
        "Config",
        "Completed",
        "Failed",
        "Infra",
        "Config",
        "App",
        "Success %",
        "Orch/sec",
        "Activity/sec",
        "p50",
        "p99"
    )?;
    for r in runs {
        let c = &r.merged.counts;
        writeln!(
            w,
            "{:<12} {:<8} {:>9} {:>6} {:>5} {:>6} {:>5} {:>9.2} {:>9.2} {:>12.2} {:>9} {:>9}",
            "duroxide-pg",
            r.profile.dispatchers(),
            c.completed,
            c.failed(),
            c.failed_infrastructure,
            c.failed_configuration,
            c.failed_application,
            c.success_pct(),
            r.merged.orch_per_sec,
            r.merged.activities_per_sec,
            fmt_ms(r.merged.e2e_latency.p50_us),
            fmt_ms(r.merged.e2e_latency.p99_us)
        )?;
    }
    let failed: Vec<String> = runs.iter().filter(|r| !r.passed).map(|r| r.profile.dispatchers()).collect();
    if failed.is_empty() {
        writeln!(w, "Suite gates: PASSED (every run passed its gates)")
    } else {
        writeln!(w, "Suite gates: FAILED in {}", failed.join(", "))
    }
}

/// One tracked run as a markdown section (appended to the per-host results file).
pub fn render_markdown(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let p = &r.profile;
    let e = &r.environment;
    let m = &r.merged;
    writeln!(w, "## {} · {} · {} · {} agent(s)\n", r.started_at, p.name, p.dispatchers(), r.agents.len())?;
    writeln!(
        w,
        "- commit `{}` on `{}`; machine `{}` ({} CPUs); PostgreSQL {}; environment: {}",
        e.commit.as_deref().unwrap_or("-"),
        e.branch.as_deref().unwrap_or("-"),
        e.machine,
        e.cpus,
        e.postgres_version,
        if e.cloud { "cloud/remote" } else { "local" }
    )?;
    writeln!(w, "- configuration: {}", describe_config(p))?;
    writeln!(
        w,
        "- key metrics: **{:.2} orch/s**, {:.1} activities/s, p50 {}, p99 {}, max {}, success {:.2}%, {:.1} commits/orchestration",
        m.orch_per_sec,
        m.activities_per_sec,
        fmt_ms(m.e2e_latency.p50_us),
        fmt_ms(m.e2e_latency.p99_us),
        fmt_ms(m.e2e_latency.max_us),
        m.counts.success_pct(),
        r.db_load.commits_per_orchestration
    )?;
    if let Some(c) = &r.comparison {
        writeln!(
            w,
            "- compared with {}: throughput {:+.1}%, p99 {:+.1}%{}",
            c.against,
            c.throughput_change_pct,
            c.p99_change_pct,
            if c.regressed { " — **regression**" } else { "" }
        )?;
    }
    for warning in &r.warnings {
        writeln!(w, "- warning: {warning}")?;
    }
    writeln!(w, "- gates: {}\n", if r.passed { "passed" } else { "**FAILED**" })?;
    writeln!(w, "| agent | launched | completed | failed | infra | orch/s | act/s | p50 | p99 | max |")?;
    writeln!(w, "|---|---|---|---|---|---|---|---|---|---|")?;
    let row = |w: &mut dyn Write, label: &str, s: &Section| {
        writeln!(
            w,
            "| {label} | {} | {} | {} | {} | {:.2} | {:.1} | {} | {} | {} |",
            s.counts.launched,
            s.counts.completed,
            s.counts.failed(),
            s.counts.failed_infrastructure,
            s.orch_per_sec,
            s.activities_per_sec,
            fmt_ms(s.e2e_latency.p50_us),
            fmt_ms(s.e2e_latency.p99_us),
            fmt_ms(s.e2e_latency.max_us)
        )
    };
    for a in &r.agents {
        row(w, &format!("{} {}", a.index, a.address), &a.section)?;
    }
    row(w, "**merged**", m)?;
    writeln!(w)
}

/// The profiles and their gates, as `coordinator profiles` lists them.
pub fn render_profiles(profiles: &[Profile], w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "{:<17} {:>8} {:>8} {:>5} {:>6} {:<14} {:>4} {:>5} {:>7}  {:<44} description",
        "profile", "in-flt", "duration", "tasks", "delay", "dispatchers", "rt", "pool", "db-lat", "gates"
    )?;
    for p in profiles {
        let dispatchers = if p.suite.is_empty() { p.dispatchers() } else { p.suite.join(",") };
        let mut gates = vec![format!(">={} orch/s", p.min_orch_per_sec)];
        if let Some(v) = p.p99_ms {
            gates.push(format!("p99<={v}ms"));
        }
        gates.push(match p.max_failed {
            Some(n) if n > 0 => format!("failed<={n}"),
            _ => "100% success".into(),
        });
        if let Some(v) = p.rss_growth_mb_per_min {
            gates.push(format!("warn RSS>{v}MB/min"));
        }
        writeln!(
            w,
            "{:<17} {:>8} {:>8} {:>5} {:>6} {:<14} {:>4} {:>5} {:>7}  {:<44} {}",
            p.name,
            p.max_concurrent,
            format_duration(p.duration),
            p.tasks_per_instance,
            format_duration(p.activity_delay),
            dispatchers,
            p.runtimes_per_agent,
            p.pool_max.map_or("-".into(), |n| n.to_string()),
            if p.db_latency.is_zero() { "-".into() } else { format_duration(p.db_latency) },
            gates.join(", "),
            p.description
        )?;
    }
    writeln!(
        w,
        "\nAll profiles also gate on 0 infrastructure/configuration failures, 0 start errors and the database check."
    )
}

/// A suite's JSON: the runs and the overall verdict.
pub fn render_suite_json(profile: &str, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    let suite =
        SuiteReport { profile: profile.to_string(), runs: runs.to_vec(), passed: runs.iter().all(|r| r.passed) };
    serde_json::to_writer_pretty(&mut *w, &suite).map_err(io::Error::other)?;
    writeln!(w)
}

/// The full report as pretty JSON.
pub fn render_json(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, r).map_err(io::Error::other)?;
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_common::config::find_profile;
    use loadgen_common::result::{AgentReport, Audit, Counts, DbLoad, Gate};

    fn report() -> RunReport {
        let section = Section {
            counts: Counts { launched: 12, completed: 12, activities: 36, ..Default::default() },
            elapsed_s: 6.0,
            orch_per_sec: 2.0,
            activities_per_sec: 6.0,
            e2e_latency: LatencySummary {
                count: 12,
                p50_us: 120_000,
                p99_us: 340_500,
                max_us: 350_000,
                ..Default::default()
            },
            observed_latency: LatencySummary::default(),
            start_latency: LatencySummary::default(),
            intended_latency: None,
        };
        RunReport {
            tool_version: "0.1.0".into(),
            run_id: "ab12cd34".into(),
            schema: "loadgen_ab12cd34".into(),
            started_at: "2026-11-26T00:00:00Z".into(),
            database: "embedded".into(),
            duroxide_version: "0.1.32".into(),
            duroxide_pg_version: "0.1.38".into(),
            profile: find_profile("light").expect("light"),
            agents: vec![AgentReport {
                index: 0,
                address: "127.0.0.1:1".into(),
                hostname: "h".into(),
                concurrency: 10,
                pool_max: 10,
                section: section.clone(),
                lost: false,
                memory: Default::default(),
            }],
            merged: section,
            audit: Audit { instances: 12, terminal_once: 12, completed: 12, ..Default::default() },
            db_load: DbLoad::default(),
            gates: vec![Gate {
                name: "throughput".into(),
                limit: ">= 1.00 orch/s".into(),
                value: "2.00 orch/s".into(),
                passed: true,
            }],
            passed: true,
            warnings: vec!["memory growth: agent 0 grew 9.00 MB/min".into()],
            comparison: None,
            environment: Default::default(),
            lost_agents: Vec::new(),
            provider_errors: Default::default(),
            ..Default::default()
        }
    }

    #[test]
    fn suite_markdown_and_profiles_render() {
        let r = report();
        let mut out = Vec::new();
        render_suite("suite", &[r.clone(), r.clone()], &mut out).expect("suite");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains("Provider") && text.contains("Activity/sec") && text.contains("Suite gates: PASSED"),
            "{text}"
        );
        assert_eq!(text.lines().filter(|l| l.starts_with("duroxide-pg")).count(), 2, "{text}");
        let mut out = Vec::new();
        render_markdown(&r, &mut out).expect("markdown");
        let md = String::from_utf8(out).expect("utf8");
        assert!(md.starts_with("## 2026-11-26T00:00:00Z · light · 2:2 · 1 agent(s)"), "{md}");
        assert!(md.contains("| **merged** | 12 | 12 |"), "{md}");
        assert!(md.contains("- warning: memory growth"), "{md}");
        let mut out = Vec::new();
        render_profiles(&loadgen_common::config::builtin_profiles(), &mut out).expect("profiles");
        let list = String::from_utf8(out).expect("utf8");
        assert!(list.lines().any(|l| l.starts_with("suite") && l.contains("1:1,2:2,4:4")), "{list}");
        assert!(list.lines().any(|l| l.starts_with("pool-stress") && l.contains(" 5 ")), "{list}");
        assert!(
            list.lines().any(|l| l.starts_with("high-latency") && l.contains("50ms") && l.contains(">=0.5 orch/s")),
            "{list}"
        );
    }

    #[test]
    fn text_summary_shows_agents_merged_and_gates() {
        let mut out = Vec::new();
        render_text(&report(), &mut out).expect("render");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("Run ab12cd34"), "{text}");
        assert!(text.contains("0 127.0.0.1:1"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("merged") && l.contains("340.5ms")), "{text}");
        assert!(text.contains("Gates: PASSED"), "{text}");
        assert!(text.contains("[ok] throughput: 2.00 orch/s"), "{text}");
        assert!(text.contains("[warn] memory growth"), "{text}");
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let mut out = Vec::new();
        render_json(&r, &mut out).expect("render");
        let back: RunReport = serde_json::from_slice(&out).expect("parse");
        assert_eq!(back, r);
    }
}
