//! Renderers of the one result model: a text summary table and JSON. Each
//! takes the report and a writer, so tests render into memory.

use std::io::{self, Write};

use loadgen_common::config::format_duration;
use loadgen_common::histogram::LatencySummary;
use loadgen_common::result::{RunReport, Section};

/// Microseconds as milliseconds with one decimal ("12.3ms"), or "-" for none.
pub fn fmt_ms(us: u64) -> String {
    if us == 0 { "-".into() } else { format!("{:.1}ms", us as f64 / 1000.0) }
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
        latency_cells(&s.e2e_latency)
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
    writeln!(
        w,
        "Profile {}: {} in flight, {} of load, fanout {} x {}, dispatchers {} x {} runtime(s)/agent, poll {}, {} agent(s)",
        p.name,
        p.max_concurrent,
        format_duration(p.duration),
        p.tasks_per_instance,
        format_duration(p.activity_delay),
        p.dispatchers(),
        p.runtimes_per_agent,
        format_duration(p.poll_interval),
        r.agents.len()
    )?;
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
        row(w, &format!("{} {}", a.index, a.address), &a.section)?;
    }
    row(w, "merged", &r.merged)?;
    writeln!(w)?;
    let m = &r.merged;
    writeln!(
        w,
        "Latency p50..max above: start call issued until the runtime recorded completion ({} samples, mean {}, {} clamped for clock skew).",
        m.e2e_latency.count,
        fmt_ms(m.e2e_latency.mean_us as u64),
        m.counts.latency_clamped
    )?;
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
    writeln!(w)?;
    writeln!(w, "Gates: {}", if r.passed { "PASSED" } else { "FAILED" })?;
    for g in &r.gates {
        writeln!(w, "  [{}] {}: {} (limit {})", if g.passed { "ok" } else { "FAIL" }, g.name, g.value, g.limit)?;
    }
    Ok(())
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
    use loadgen_common::result::{AgentReport, Counts, DbCheck, DbLoad, Gate};

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
                section: section.clone(),
            }],
            merged: section,
            db_check: DbCheck { instances: 12, completed_once: 12, ..Default::default() },
            db_load: DbLoad::default(),
            gates: vec![Gate {
                name: "throughput".into(),
                limit: ">= 1.00 orch/s".into(),
                value: "2.00 orch/s".into(),
                passed: true,
            }],
            passed: true,
        }
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
