//! The run's database time by stored procedure, and the dequeues' empty
//! share, in a few lines.

use std::io::{self, Write};

use crate::model::procedures::ProcedureReport;

/// Procedures named on the line (the rest are in the JSON and HTML).
const NAMED: usize = 5;

pub fn render(p: &ProcedureReport, w: &mut dyn Write) -> io::Result<()> {
    if !p.functions.is_empty() {
        let named: Vec<String> = p
            .functions
            .iter()
            .take(NAMED)
            .map(|f| format!("{} {:.1}% ({} calls, mean {:.2}ms)", f.name, f.share_pct, f.calls, f.mean_ms))
            .collect();
        let more = p.functions.len().saturating_sub(NAMED);
        writeln!(
            w,
            "Provider time by stored procedure (self time, pg_stat_user_functions): {}{}.",
            named.join(", "),
            if more > 0 { format!(", {more} more") } else { String::new() }
        )?;
    } else if let Some((top, share)) = p.dominant() {
        writeln!(w, "Provider time by statement (pg_stat_statements): most in {top} ({share:.1}%).")?;
    }
    if !p.fetches.is_empty() {
        let rows: Vec<String> = p
            .fetches
            .iter()
            .map(|f| format!("{} {} calls, {:.1}% empty ({})", f.procedure, f.calls, f.empty_pct, f.ready_phrase()))
            .collect();
        writeln!(w, "Dequeues: {}.", rows.join("; "))?;
    }
    if p.reset {
        writeln!(
            w,
            "  [note] the server's statistics were reset during the run (a crash restart): the procedure figures cover the time after it"
        )?;
    }
    for a in &p.advice {
        writeln!(w, "  [note] {a}")?;
    }
    Ok(())
}
