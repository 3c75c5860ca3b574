//! The HTML page of a robustness matrix: the table (a row per fault and
//! build, the faults whose verdicts differ between builds marked, cells not
//! as expected in red), what each fault did, and the runs.

use std::io::{self, Write};

use crate::model::RunReport;
use crate::model::matrix::MatrixReport;

use super::*;

pub fn render_matrix(m: &MatrixReport, runs: &[RunReport], w: &mut dyn Write) -> io::Result<()> {
    page_start(w, &format!("Robustness matrix · {}", m.profile))?;
    write!(w, "<h1>Robustness matrix · profile {}", Esc(&m.profile))?;
    let (class, verdict) = if m.passed { ("pass", "AS EXPECTED") } else { ("fail", "NOT AS EXPECTED") };
    writeln!(w, r#"<span class="badge {class}">{verdict}</span></h1>"#)?;
    writeln!(
        w,
        r#"<p class="sub">{:.0} s a run, each fault at {:.0} s for {:.0} s · builds {} · database {}</p>"#,
        m.duration_s,
        m.fault_at_s,
        m.fault_for_s,
        Esc(&m.builds.join(", ")),
        Esc(&m.database)
    )?;
    let rows = m.rows.iter().flat_map(|row| {
        row.cells.iter().map(move |c| {
            let cells = vec![
                if row.differs { format!("{} (builds differ)", row.fault) } else { row.fault.clone() },
                c.build.clone(),
                c.verdict_text(),
                c.hits_text(),
                c.retried.to_string(),
                c.failed_text(),
                c.processed_twice.to_string(),
                c.lost_text(),
                c.recovery_text(),
            ];
            (if c.as_expected() { if row.differs { Some("hl") } else { None } } else { Some("bad") }, cells)
        })
    });
    let head = [
        "fault",
        "build",
        "verdict",
        "calls hit",
        "retried by the provider",
        "failed (by category)",
        "processed twice",
        "lost",
        "recovery",
    ];
    table(w, "A row per fault and build", &head, 3, rows)?;
    writeln!(
        w,
        r#"<p class="sub">Lost: acknowledged work not so at the end, instances not terminal at the end, and executions duroxide's client cannot see (no instance row). Retried: calls duroxide-pg retried itself ("Retryable error, will retry").</p>"#
    )?;
    let detail = m.rows.iter().flat_map(|row| {
        row.cells.iter().map(move |c| {
            (None, vec![row.fault.clone(), row.about.clone(), c.build.clone(), c.run_id.clone(), c.detail.clone()])
        })
    });
    table(w, "What each fault did", &["fault", "what it is", "build", "run", "what it did"], 5, detail)?;
    writeln!(w, r#"<p class="sub">{} run(s) in the JSON, each in full.</p>"#, runs.len())?;
    page_end(w)
}
