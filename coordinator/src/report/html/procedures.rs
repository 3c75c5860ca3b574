//! The run's database time by stored procedure and statement, and the
//! dequeues' empty share, as tables.

use std::io::{self, Write};

use super::escape::Esc;
use super::table;
use crate::model::procedures::ProcedureReport;

/// Rows per table (the JSON keeps every function and the top statements).
const ROWS: usize = 15;

pub fn render(p: &ProcedureReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "<h3>Where the provider spent the database's time</h3>")?;
    if p.reset {
        writeln!(
            w,
            r#"<p class="sub">The server's statistics were reset during the run (a crash restart): these figures cover the time after it.</p>"#
        )?;
    }
    if !p.functions.is_empty() {
        let rows = p.functions.iter().take(ROWS).map(|f| {
            let cells = vec![
                f.name.clone(),
                f.calls.to_string(),
                format!("{:.1}", f.total_ms),
                format!("{:.1}", f.self_ms),
                format!("{:.3}", f.mean_ms),
                format!("{:.1}%", f.share_pct),
            ];
            (None, cells)
        });
        table(
            w,
            "Stored procedures (pg_stat_user_functions)",
            &["procedure", "calls", "total ms", "self ms", "mean ms", "share of self time"],
            1,
            rows,
        )?;
    }
    if !p.fetches.is_empty() {
        let rows = p.fetches.iter().map(|f| {
            let cells = vec![
                f.procedure.clone(),
                f.calls.to_string(),
                format!("{} ({:.1}%)", f.empty, f.empty_pct),
                f.seconds_with_ready_work.to_string(),
                f.calls_while_ready.to_string(),
                if f.ready_measured() {
                    format!("{} ({:.1}%)", f.empty_while_ready, f.empty_while_ready_pct)
                } else {
                    "not measured (too few seconds with ready work)".into()
                },
            ];
            (None, cells)
        });
        table(
            w,
            "Dequeues (pg_stat_statements, and the queue depths sampled each second)",
            &["dequeue", "calls", "empty", "seconds with ready work", "calls in them", "empty in them"],
            1,
            rows,
        )?;
    }
    if !p.statements.is_empty() {
        let rows = p.statements.iter().take(ROWS).map(|s| {
            let who = if s.generator { "generator" } else { "provider" };
            let cells = vec![
                s.statement.clone(),
                who.to_string(),
                s.calls.to_string(),
                format!("{:.1}", s.total_ms),
                format!("{:.3}", s.mean_ms),
                s.rows.to_string(),
                format!("{:.1}%", s.share_pct),
            ];
            (None, cells)
        });
        table(
            w,
            "Statements (pg_stat_statements, top-level, naming the run's schema)",
            &["statement", "by", "calls", "total ms", "mean ms", "rows", "share of time"],
            2,
            rows,
        )?;
    }
    for a in &p.advice {
        writeln!(w, r#"<p class="sub">{}</p>"#, Esc(a))?;
    }
    Ok(())
}
