//! The top of a run's page: the headline figures as tiles and the verdict
//! in a line (the full gates table comes with the details).

use std::io::{self, Write};

use crate::model::RunReport;
use crate::report::view::fmt_ms;

use super::Esc;

/// The headline figures as tiles: what a reader looks for first.
pub(super) fn render_headline(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let c = &r.merged.counts;
    let l = r.merged.headline_latency();
    let failed = c.failed() + c.start_errors;
    let tiles = [
        ("completed", c.completed.to_string(), false),
        ("failed", failed.to_string(), c.not_as_expected() > 0),
        ("orch/s", format!("{:.1}", r.merged.orch_per_sec), false),
        ("p50", fmt_ms(l.p50_us), false),
        ("p99", fmt_ms(l.p99_us), r.gates.iter().any(|g| g.name == "p99 latency" && !g.passed)),
        ("p99.9", fmt_ms(l.p999_us), false),
        ("audit", if r.audit.passed() { "passed" } else { "FAILED" }.to_string(), !r.audit.passed()),
        ("faults", r.faults.len().to_string(), false),
    ];
    writeln!(w, r#"<div class="tiles" data-headline>"#)?;
    for (name, value, bad) in tiles {
        let class = if bad { "tile bad" } else { "tile" };
        writeln!(w, r#"<div class="{class}"><b>{}</b><span>{}</span></div>"#, Esc(&value), Esc(name))?;
    }
    writeln!(w, "</div>")
}

/// The verdict in a line or a list: every gate passed, or which failed
/// and why; and the warnings.
pub(super) fn render_verdict(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let failed: Vec<_> = r.gates.iter().filter(|g| !g.passed).collect();
    if failed.is_empty() {
        writeln!(w, r#"<p data-verdict>Every gate passed ({}).</p>"#, r.gates.len())?;
    } else {
        writeln!(w, r#"<p data-verdict class="bad">{} of {} gates failed:</p><ul>"#, failed.len(), r.gates.len())?;
        for g in failed {
            writeln!(
                w,
                r#"<li class="bad"><b>{}</b>: {} (limit {})</li>"#,
                Esc(&g.name),
                Esc(&g.value),
                Esc(&g.limit)
            )?;
        }
        writeln!(w, "</ul>")?;
    }
    if !r.warnings.is_empty() {
        writeln!(w, "<p><b>Warnings</b></p><ul>")?;
        for warning in &r.warnings {
            writeln!(w, r#"<li class="bad">{}</li>"#, Esc(warning))?;
        }
        writeln!(w, "</ul>")?;
    }
    Ok(())
}
