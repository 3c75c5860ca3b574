//! A run's correctness in the summary: the agents' clocks, and the audit's
//! findings (instances that differ, exactly once, livelock, lost work).

use std::io::{self, Write};

use crate::model::{ClockReading, RunReport};

/// The agents' clocks against the coordinator's, from their Hellos and
/// their progress messages: the largest offset of each kind, and each agent
/// a second or more off by name (duroxide-pg's leases compare the runtimes'
/// clocks).
pub(super) fn render_clocks(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let read: Vec<(u32, ClockReading)> = r.agents.iter().filter_map(|a| a.clock.map(|c| (a.index, c))).collect();
    let Some((index, largest)) = read.iter().max_by(|a, b| a.1.offset_ms.abs().total_cmp(&b.1.offset_ms.abs())) else {
        return Ok(());
    };
    let during = r
        .agents
        .iter()
        .filter_map(|a| a.clock_during.map(|c| (a.index, c)))
        .max_by(|a, b| a.1.largest().abs().total_cmp(&b.1.largest().abs()))
        .map(|(i, c)| format!("; during the run agent {i} {:+.1} to {:+.1} ms", c.min_offset_ms, c.max_offset_ms))
        .unwrap_or_default();
    writeln!(
        w,
        "  clocks against the coordinator's: at Hello, largest offset agent {index} {:+.1} ms (within {:.1} ms){during}{}",
        largest.offset_ms,
        largest.within_ms,
        if read.len() < r.agents.len() { "; some agents did not send their time" } else { "" }
    )?;
    for a in &r.agents {
        let Some(o) = a.largest_clock_offset_ms().filter(|o| o.abs() >= ClockReading::NAMED_MS) else { continue };
        let when = match a.clock {
            Some(c) if c.offset_ms.abs() >= ClockReading::NAMED_MS => "",
            _ => " during the run",
        };
        writeln!(
            w,
            "  [warn] agent {}'s clock was {:.1} s {} the coordinator's{when}; duroxide-pg's leases compare the runtimes' clocks",
            a.index,
            o.abs() / 1000.0,
            if o > 0.0 { "ahead of" } else { "behind" }
        )?;
    }
    Ok(())
}

/// The audit's line, the first instances that differ, and each invariant's
/// verdict (exactly once, no livelock, no lost acknowledged work).
pub(super) fn render_audit_findings(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let a = &r.audit;
    writeln!(
        w,
        "Audit: {} instance(s) read in {} ms; {} as their scenario expects, {} differ, {} failed unexpectedly; {} queued message(s); {} redelivered activity execution(s).",
        a.instances, a.duration_ms, a.as_expected, a.anomalies, a.unexpected_failures, a.queued, a.redeliveries
    )?;
    for m in a.mismatches.iter().take(5) {
        writeln!(w, "  {} ({}): {}", m.instance, m.scenario, m.problems.join("; "))?;
    }
    if a.mismatches.len() > 5 {
        writeln!(w, "  ... and more in --json")?;
    }
    if a.exactly_once_checked {
        if a.processed_twice == 0 {
            writeln!(w, "  exactly once: no message processed twice (events, completions and starts, per execution)")?;
        } else {
            writeln!(w, "  exactly once: VIOLATED, {} message(s) processed again:", a.processed_twice)?;
            for d in a.duplicates.iter().take(5) {
                writeln!(w, "    {}", d.line())?;
            }
            if a.duplicates.len() > 5 {
                writeln!(w, "    ... and more in --json")?;
            }
        }
    }
    if let Some(l) = &a.activity_ledger {
        let verdict = if l.completed_unrun + l.unrecorded > 0 { "VIOLATED, " } else { "" };
        writeln!(w, "  exactly once (activity ledger, kept by the agents): {verdict}{}", l.summary())?;
        for e in l.named.iter().take(5) {
            writeln!(w, "    {}: {}", e.kind.replace('_', " "), e.line())?;
        }
    }
    if a.livelock_checked {
        let many = crate::model::audit::Redelivered::MANY;
        match a.redelivered_messages.len() {
            0 => writeln!(w, "  no livelock: no message delivered {many} times or more")?,
            n => {
                let verdict = if a.livelocked > 0 { "VIOLATED, " } else { "" };
                writeln!(
                    w,
                    "  no livelock: {verdict}{n} message(s) delivered {many} times or more, {} never processed:",
                    a.livelocked
                )?;
                for m in a.redelivered_messages.iter().take(5) {
                    writeln!(w, "    {}", m.line())?;
                }
            }
        }
    }
    if a.expired_leases_checked {
        match a.expired_leases + a.bad_renewals {
            0 => writeln!(
                w,
                "  no expired lease: no lease handed out already expired, no renewal reviving one (every lease written, on the database's clock)"
            )?,
            _ => {
                writeln!(
                    w,
                    "  no expired lease: VIOLATED, {} lease(s) handed out already expired, {} renewal(s) that revived one or moved its deadline earlier:",
                    a.expired_leases, a.bad_renewals
                )?;
                for l in a.expired_lease_named.iter().take(5) {
                    writeln!(w, "    {}", l.line())?;
                }
            }
        }
    }
    if a.acknowledged_checked > 0 {
        if a.lost_work.is_empty() {
            writeln!(
                w,
                "  no lost acknowledged work: all {} instance(s) seen ending during the run ended so (same status, output and history)",
                a.acknowledged_checked
            )?;
        } else {
            writeln!(
                w,
                "  no lost acknowledged work: VIOLATED, of {} instance(s) seen ending during the run {} are not so now, {} have another output, {} a shorter history:",
                a.acknowledged_checked, a.lost_acknowledged, a.changed_output, a.shortened_history
            )?;
            for l in a.lost_work.iter().take(5) {
                writeln!(w, "    {}", l.line())?;
            }
        }
    }
    for n in &a.notes {
        writeln!(w, "  [note] {n}")?;
    }
    Ok(())
}
