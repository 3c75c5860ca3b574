//! Providers side by side for people: per dispatcher combination, each
//! provider's throughput (min / median / max) and latency, and the
//! Postgres/SQLite ratio next to what the plan expects.

use std::io::{self, Write};

use crate::model::compare::CompareReport;

pub fn render(c: &CompareReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w)?;
    let names: Vec<&str> = c.providers.iter().map(|p| p.as_str()).collect();
    writeln!(
        w,
        "Providers compared on profile {}: {}; {} run(s) each per combination, the order rotating; Postgres: {}",
        c.profile,
        names.join(", "),
        c.repeat,
        if c.database.is_empty() { "-" } else { &c.database }
    )?;
    writeln!(
        w,
        "  {:<11} {:<14} {:>26} {:>10} {:>10}",
        "dispatchers", "provider", "orch/s min / median / max", "p50 ms", "p99 ms"
    )?;
    for row in &c.rows {
        for cell in &row.cells {
            writeln!(
                w,
                "  {:<11} {:<14} {:>26} {:>10.1} {:>10.1}",
                row.dispatchers,
                cell.provider.as_str(),
                format!("{:.1} / {:.1} / {:.1}", cell.min, cell.median, cell.max),
                cell.p50_ms,
                cell.p99_ms
            )?;
        }
        if let Some(r) = row.ratio {
            writeln!(
                w,
                "  {:<11} Postgres/SQLite throughput: {:.0}%{}",
                row.dispatchers,
                r * 100.0,
                c.expected.as_ref().map_or(String::new(), |e| format!(" (the plan expects {e})"))
            )?;
        }
    }
    for p in &c.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    writeln!(w, "Runs: {}.", if c.passed { "all passed" } else { "NOT all passed" })
}
