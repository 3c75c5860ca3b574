//! A robustness matrix for people: a line per fault and build, the faults
//! whose verdicts differ between builds marked, and what was not expected.

use std::io::{self, Write};

use crate::model::matrix::MatrixReport;

pub fn render(m: &MatrixReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)?;
    writeln!(
        w,
        "Robustness matrix: profile {}, {:.0} s a run, each fault at {:.0} s for {:.0} s; builds {}; database {}",
        m.profile,
        m.duration_s,
        m.fault_at_s,
        m.fault_for_s,
        m.builds.join(", "),
        if m.database.is_empty() { "-" } else { &m.database }
    )?;
    let head =
        ["fault", "build", "calls hit", "retried", "failed (by category)", "twice", "lost", "recovery", "verdict"];
    let mut lines: Vec<[String; 9]> = Vec::new();
    for row in &m.rows {
        for c in &row.cells {
            let mark = if row.differs { " *" } else { "" };
            lines.push([
                format!("{}{mark}", row.fault),
                c.build.clone(),
                c.hits_text(),
                c.retried.to_string(),
                c.failed_text(),
                c.processed_twice.to_string(),
                c.lost_text(),
                c.recovery_text(),
                c.verdict_text(),
            ]);
        }
    }
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for l in &lines {
        for (i, cell) in l.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("  {}", padded.join("  ").trim_end())
    };
    writeln!(w, "{}", line(&head.map(str::to_string)))?;
    for l in &lines {
        writeln!(w, "{}", line(l))?;
    }
    if m.rows.iter().any(|r| r.differs) {
        writeln!(w, "  * the builds' verdicts differ")?;
    }
    writeln!(
        w,
        "Lost: acknowledged work not so at the end, instances not terminal at the end, and executions duroxide's client cannot see (no instance row). Retried: calls duroxide-pg retried itself."
    )?;
    let tally: Vec<String> = crate::matrix::tally(m).iter().map(|(v, n)| format!("{v} {n}")).collect();
    let unexpected: Vec<String> =
        m.unexpected().map(|(r, c)| format!("{} on {}: {}", r.fault, c.build, c.verdict_text())).collect();
    if unexpected.is_empty() {
        writeln!(w, "Matrix: PASSED ({}; every cell as expected)", tally.join(", "))
    } else {
        writeln!(w, "Matrix: FAILED ({}); not as expected: {}", tally.join(", "), unexpected.join("; "))
    }
}
