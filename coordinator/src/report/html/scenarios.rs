//! The run page's per-scenario, contention and audit-finding sections.

use std::io::{self, Write};

use crate::model::RunReport;
use crate::report::view::fmt_ms;

use super::*;

/// One row per scenario (merged over the agents), then what each scenario
/// alone measures: history latencies, facts, its audit.
pub fn render_scenarios(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    if r.scenarios.is_empty() {
        return Ok(());
    }
    let head = [
        "scenario",
        "launched",
        "completed",
        "failed",
        "by design",
        "unfinished",
        "success %",
        "orch/s",
        "p50",
        "p99",
        "max",
        "audit as expected",
    ];
    let rows = r.scenarios.iter().map(|s| {
        let c = &s.section.counts;
        let l = s.section.headline_latency();
        let bad = c.as_expected() < c.launched || s.audit.mismatched > 0;
        let cells = vec![
            s.name.clone(),
            c.launched.to_string(),
            c.completed.to_string(),
            c.failed().to_string(),
            c.expected_failures.to_string(),
            c.unfinished.to_string(),
            format!("{:.2}", c.success_pct()),
            format!("{:.2}", s.section.orch_per_sec),
            fmt_ms(l.p50_us),
            fmt_ms(l.p99_us),
            fmt_ms(l.max_us),
            format!("{} of {}", s.audit.as_expected, s.audit.instances),
        ];
        (bad.then_some("bad"), cells)
    });
    table(w, &format!("Per scenario ({})", r.merged.headline_definition()), &head, 1, rows)?;
    let measured: Vec<(String, String)> = r
        .scenarios
        .iter()
        .flat_map(|s| {
            let latencies = s.history_latencies.iter().map(move |h| {
                let l = &h.latency;
                (
                    format!("{}: {}", s.name, h.name),
                    format!(
                        "{} samples, p50 {} p99 {} max {}",
                        l.count,
                        fmt_ms(l.p50_us),
                        fmt_ms(l.p99_us),
                        fmt_ms(l.max_us)
                    ),
                )
            });
            let facts = s.facts.iter().map(move |(k, v)| (format!("{}: {k}", s.name), v.to_string()));
            latencies.chain(facts)
        })
        .collect();
    if !measured.is_empty() {
        kv_table(w, "What each scenario measures (latencies from the history, counts from the driver)", &measured)?;
    }
    Ok(())
}

/// Deadlocks, lock waits and the provider's retries.
pub fn render_contention(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let c = &r.contention;
    let mut rows = vec![
        ("deadlocks (pg_stat_database)".to_string(), c.deadlocks.to_string()),
        ("lock waits, peak / mean".into(), format!("{} / {:.1}", c.peak_lock_waits, c.mean_lock_waits)),
        (
            "advisory lock waits, peak / mean".into(),
            format!("{} / {:.1}", c.peak_advisory_lock_waits, c.mean_advisory_lock_waits),
        ),
        ("samples".into(), c.samples.to_string()),
    ];
    rows.extend(c.provider_retries.iter().map(|(k, n)| (format!("provider: {k}"), n.to_string())));
    kv_table(w, "Contention", &rows)
}

/// The instances that differ from their scenario's expectation, and what
/// the audit named: messages processed again or redelivered, bad leases,
/// lost work, the activity ledger's differences.
pub fn render_mismatches(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let a = &r.audit;
    render_messages(a, w)?;
    render_named(a, w)?;
    if a.mismatches.is_empty() {
        return Ok(());
    }
    let rows =
        a.mismatches.iter().map(|m| (Some("bad"), vec![m.instance.clone(), m.scenario.clone(), m.problems.join("; ")]));
    table(
        w,
        "Instances that differ from what their scenario expects",
        &["instance", "scenario", "what differs"],
        3,
        rows,
    )
}

/// Messages processed again, and messages delivered many times.
fn render_messages(a: &crate::model::Audit, w: &mut dyn Write) -> io::Result<()> {
    if !a.duplicates.is_empty() {
        let rows = a.duplicates.iter().map(|d| {
            let ids: Vec<String> = d.event_ids.iter().map(u64::to_string).collect();
            (
                Some("bad"),
                vec![
                    d.instance.clone(),
                    d.execution.to_string(),
                    d.message.clone(),
                    d.times.to_string(),
                    ids.join(", "),
                ],
            )
        });
        table(
            w,
            "Exactly once violated: messages processed again",
            &["instance", "execution", "message", "times", "history events"],
            3,
            rows,
        )?;
    }
    if !a.redelivered_messages.is_empty() {
        let rows = a.redelivered_messages.iter().map(|m| {
            let class = if m.processed { None } else { Some("bad") };
            let cells = vec![
                m.queue.clone(),
                m.instance.clone(),
                m.message_id.to_string(),
                m.attempts.to_string(),
                format!("{:.1}-{:.1} s", m.first_seen_s, m.last_seen_s),
                if m.processed { "processed" } else { "never" }.to_string(),
            ];
            (class, cells)
        });
        table(
            w,
            &format!("Messages delivered {} times or more", crate::model::audit::Redelivered::MANY),
            &["queue", "instance", "message", "deliveries", "seen", "processed"],
            2,
            rows,
        )?;
    }
    Ok(())
}

/// Leases handed out expired, acknowledged work lost, the activity ledger.
fn render_named(a: &crate::model::Audit, w: &mut dyn Write) -> io::Result<()> {
    if !a.expired_lease_named.is_empty() {
        let rows = a.expired_lease_named.iter().map(|l| {
            let cells = vec![
                l.queue.clone(),
                l.instance.clone(),
                l.token.clone(),
                l.kind.replace('_', " "),
                format!("{:.1} s", l.by_ms as f64 / 1000.0),
                format!("{:.1} s", l.seen_s),
            ];
            (Some("bad"), cells)
        });
        let head = ["lease", "instance", "lock token", "what", "by", "at"];
        table(w, "Leases handed out already expired, or renewed wrongly", &head, 4, rows)?;
    }
    if !a.lost_work.is_empty() {
        let rows =
            a.lost_work.iter().map(|l| (Some("bad"), vec![l.instance.clone(), l.seen.clone(), l.finally.clone()]));
        table(
            w,
            "Acknowledged work lost: seen ending during the run, not so now",
            &["instance", "seen", "now"],
            3,
            rows,
        )?;
    }
    if let Some(l) = a.activity_ledger.as_ref().filter(|l| !l.named.is_empty()) {
        let rows = l.named.iter().map(|e| {
            let class = if e.kind == "ran_again" { None } else { Some("bad") };
            let agents: Vec<String> = e.agents.iter().map(u32::to_string).collect();
            let cells = vec![
                e.kind.replace('_', " "),
                e.instance.clone(),
                e.execution.to_string(),
                e.activity.clone(),
                e.input_md5.chars().take(8).collect(),
                e.scheduled.to_string(),
                e.completed.to_string(),
                (e.ran_ok + e.ran_failed).to_string(),
                agents.join(", "),
            ];
            (class, cells)
        });
        let head = ["what", "instance", "execution", "activity", "input", "scheduled", "completed", "ran", "agents"];
        table(w, "Activity ledger (kept by the agents) against the history", &head, 5, rows)?;
    }
    Ok(())
}
