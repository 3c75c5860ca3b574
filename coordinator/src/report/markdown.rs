//! The markdown renderer: one section per run, as `--track` appends to the
//! per-database-host results file (and `--output markdown=FILE` writes).
//! Latencies are the headline ones, with their definition.

use std::io::{self, Write};

use super::view::{describe_config, fmt_ms};
use super::{Document, Renderer};
use crate::model::{RunReport, Section};

/// Per-agent rows a history entry lists; with more agents they are left to the JSON.
const MARKDOWN_AGENTS: usize = 16;

/// Markdown sections for results files.
#[derive(Debug)]
pub struct Markdown;

impl Renderer for Markdown {
    fn name(&self) -> &'static str {
        "markdown"
    }

    fn supports(&self, doc: &Document<'_>) -> bool {
        matches!(doc, Document::Run(_) | Document::Suite { .. } | Document::Sweep { .. })
    }

    fn render(&self, doc: &Document<'_>, w: &mut dyn Write) -> io::Result<()> {
        match doc {
            Document::Run(r) => run(r, w),
            Document::Suite { runs, .. } | Document::Sweep { runs, .. } => runs.iter().try_for_each(|r| run(r, w)),
            _ => Err(io::Error::other("not a run")),
        }
    }
}

/// One run as a markdown section.
pub fn run(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let p = &r.profile;
    let e = &r.environment;
    let m = &r.merged;
    let l = m.headline_latency();
    writeln!(w, "## {} · {} · {} · {} agent(s)\n", r.started_at, p.name, p.dispatchers, r.agents.len())?;
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
    writeln!(w, "- configuration: {}", describe_config(r))?;
    writeln!(
        w,
        "- key metrics: **{:.2} orch/s**, {:.1} activities/s, p50 {}, p99 {}, max {} ({}), success {:.2}%, {:.1} commits/orchestration",
        m.orch_per_sec,
        m.activities_per_sec,
        fmt_ms(l.p50_us),
        fmt_ms(l.p99_us),
        fmt_ms(l.max_us),
        m.headline_definition(),
        m.counts.success_pct(),
        r.db_load.commits_per_orchestration
    )?;
    writeln!(
        w,
        "- audit: {} instance(s), {} as expected, {} differ; contention: {} deadlock(s), lock waits peak {}",
        r.audit.instances, r.audit.as_expected, r.audit.anomalies, r.contention.deadlocks, r.contention.peak_lock_waits
    )?;
    if let Some(p) = &r.procedures
        && let Some((top, share)) = p.dominant()
    {
        let fetches: Vec<String> = p
            .fetches
            .iter()
            .map(|f| {
                format!("{} {:.1}% empty ({:.1}% with ready work)", f.procedure, f.empty_pct, f.empty_while_ready_pct)
            })
            .collect();
        let fetches = if fetches.is_empty() { String::new() } else { format!("; {}", fetches.join(", ")) };
        writeln!(w, "- database time: most in `{top}` ({share:.1}%){fetches}")?;
    }
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
        let l = s.headline_latency();
        writeln!(
            w,
            "| {label} | {} | {} | {} | {} | {:.2} | {:.1} | {} | {} | {} |",
            s.counts.launched,
            s.counts.completed,
            s.counts.failed(),
            s.counts.failed_infrastructure,
            s.orch_per_sec,
            s.activities_per_sec,
            fmt_ms(l.p50_us),
            fmt_ms(l.p99_us),
            fmt_ms(l.max_us)
        )
    };
    // A history file stays readable with many agents: their rows are in the JSON.
    if r.agents.len() <= MARKDOWN_AGENTS {
        for a in &r.agents {
            row(w, &format!("{} {}", a.index, a.address), &a.section)?;
        }
    } else {
        writeln!(w, "| _{} agents: per-agent rows in the JSON result_ | | | | | | | | | |", r.agents.len())?;
    }
    for s in r.scenarios.iter().filter(|_| r.scenarios.len() > 1) {
        row(w, &format!("_{}_", s.name), &s.section)?;
    }
    row(w, "**merged**", m)?;
    writeln!(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LatencySummary;

    #[test]
    fn open_loop_runs_show_the_intended_start_latency() {
        let mut r = RunReport { started_at: "2026-11-26T00:00:00Z".into(), ..Default::default() };
        r.merged.e2e_latency = LatencySummary { p99_us: 100_000, ..Default::default() };
        r.merged.intended_latency = Some(LatencySummary { p99_us: 900_000, ..Default::default() });
        let mut out = Vec::new();
        run(&r, &mut out).expect("markdown");
        let md = String::from_utf8(out).expect("utf8");
        assert!(md.contains("p99 900.0ms") && md.contains("from the intended start"), "{md}");
        assert!(md.contains("| **merged** |") && md.contains("| 900.0ms |"), "{md}");
    }
}
