//! The output pipeline: one result model, many renderers. A renderer is one
//! file and one line in [`RENDERERS`]; every command's output goes through
//! [`write_all`], which writes the human summary (to stdout, or to stderr
//! when stdout carries a result) and every `--json`/`--report`/`--output`
//! target, and the interval logs of `--hlog-dir`.
//!
//! - [`view`]: what every renderer shows the same way (configuration line,
//!   latency cells): decided once;
//! - [`text`], [`json`], [`markdown`], [`html`]: the renderers;
//! - [`hlog`]: HdrHistogram interval logs;
//! - [`console`]: progress as it happens (the run's [`crate::notice`]s).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::bench::BenchReport;
use crate::error::CoordinatorError;
use crate::model::{Audit, IntervalLogs, RunReport, SweepReport};
use crate::notice::{Notice, Observer};
use crate::plan::Outputs;
use crate::plan::ProfilePlan;
use crate::plan::outputs::create_file;

pub mod console;
pub mod hlog;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod text;
pub mod view;

/// Every renderer, by the name `--output FORMAT=FILE` takes.
pub const RENDERERS: &[&dyn Renderer] = &[&text::Text, &json::Json, &markdown::Markdown, &html::Html, &junit::Junit];

/// What there is to render.
#[derive(Clone, Copy, Debug)]
pub enum Document<'a> {
    Run(&'a RunReport),
    Suite { profile: &'a str, runs: &'a [RunReport] },
    Sweep { sweep: &'a SweepReport, runs: &'a [RunReport] },
    Bench(&'a BenchReport),
    Ab { ab: &'a crate::model::ab::AbReport, runs: &'a [RunReport] },
    Compare { compare: &'a crate::model::compare::CompareReport, runs: &'a [RunReport] },
    Matrix { matrix: &'a crate::model::matrix::MatrixReport, runs: &'a [RunReport] },
    Audit { schema: &'a str, audit: &'a Audit },
    Cleanup(&'a crate::db::cleanup::CleanupReport),
    Profiles(&'a [ProfilePlan]),
    Scenarios,
    Faults,
}

/// Turns a document into bytes.
pub trait Renderer: Sync {
    /// Its format name.
    fn name(&self) -> &'static str;
    /// Whether it renders this kind of document.
    fn supports(&self, doc: &Document<'_>) -> bool;
    fn render(&self, doc: &Document<'_>, w: &mut dyn Write) -> io::Result<()>;
    /// True when a suite is one file per run (`report.html` -> `report-1.html`, ...).
    fn file_per_run(&self) -> bool {
        false
    }
}

/// The renderer called `name`.
pub fn find(name: &str) -> Option<&'static dyn Renderer> {
    RENDERERS.iter().copied().find(|r| r.name() == name)
}

/// Every renderer's name.
pub fn names() -> Vec<&'static str> {
    RENDERERS.iter().map(|r| r.name()).collect()
}

/// `dir/name.html` -> `dir/name-<n>.html`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    path.with_file_name(format!("{stem}-{n}{ext}"))
}

fn render_to(r: &dyn Renderer, doc: &Document<'_>, path: &Path) -> io::Result<()> {
    if path.as_os_str() == "-" {
        let mut out = io::stdout().lock();
        r.render(doc, &mut out)?;
        return out.flush();
    }
    let mut w = io::BufWriter::new(create_file(path)?);
    r.render(doc, &mut w)?;
    w.flush()
}

/// Write the human summary and every target of `outputs`, and the interval
/// logs; tell `obs` what was written.
pub fn write_all(
    doc: &Document<'_>,
    outputs: &Outputs,
    logs: &[IntervalLogs],
    obs: &dyn Observer,
) -> Result<(), CoordinatorError> {
    // With a result on stdout the summary goes to stderr.
    let summary = if outputs.stdout_taken() {
        text::Text.render(doc, &mut io::stderr().lock())
    } else {
        text::Text.render(doc, &mut io::stdout().lock())
    };
    if let Err(e) = summary {
        obs.notice(&Notice::Warning(format!("cannot write the summary: {e}")));
    }
    for t in &outputs.targets {
        let r = find(&t.format).ok_or_else(|| CoordinatorError::Output {
            path: t.path.display().to_string(),
            detail: format!("unknown format {}", t.format),
        })?;
        let fail = |path: &Path, e: io::Error| CoordinatorError::Output {
            path: path.display().to_string(),
            detail: e.to_string(),
        };
        match doc {
            Document::Suite { runs, .. } if r.file_per_run() && !t.is_stdout() => {
                for (i, run) in runs.iter().enumerate() {
                    let path = numbered(&t.path, i + 1);
                    render_to(r, &Document::Run(run), &path).map_err(|e| fail(&path, e))?;
                    obs.notice(&Notice::Wrote { what: r.name(), path: path.display().to_string() });
                }
            }
            _ => {
                render_to(r, doc, &t.path).map_err(|e| fail(&t.path, e))?;
                if !t.is_stdout() {
                    obs.notice(&Notice::Wrote { what: r.name(), path: t.path.display().to_string() });
                }
            }
        }
    }
    if let Some(dir) = &outputs.hlog_dir {
        for l in logs {
            // A failure here loses only the logs, not the run's result.
            match hlog::write_run_logs(dir, l) {
                Ok(paths) => {
                    for p in paths {
                        obs.notice(&Notice::Wrote { what: "interval log", path: p.display().to_string() });
                    }
                }
                Err(e) => obs.notice(&Notice::Warning(format!("cannot write interval logs to {}: {e}", dir.display()))),
            }
        }
    }
    Ok(())
}

/// Refuse, before anything runs, a target whose renderer cannot render `doc`'s kind.
pub fn check_targets(outputs: &Outputs, doc: &Document<'_>) -> Result<(), crate::plan::PlanError> {
    for t in &outputs.targets {
        match find(&t.format) {
            Some(r) if r.supports(doc) => {}
            Some(r) => {
                return Err(crate::plan::PlanError::Invalid(format!(
                    "{} {}: the {} renderer does not render this command's result",
                    t.flag,
                    t.path.display(),
                    r.name()
                )));
            }
            None => {
                return Err(crate::plan::PlanError::Invalid(format!(
                    "{} {}: unknown format {:?} (known: {})",
                    t.flag,
                    t.path.display(),
                    t.format,
                    names().join(", ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_renderer_has_a_unique_name_and_is_found() {
        let n = names();
        let mut unique = n.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), n.len(), "{n:?}");
        for name in n {
            assert_eq!(find(name).map(|r| r.name()), Some(name));
        }
        assert!(find("yaml").is_none());
        assert_eq!(numbered(Path::new("out/r.html"), 2), Path::new("out/r-2.html"));
    }
}
