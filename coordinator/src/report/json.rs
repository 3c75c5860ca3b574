//! The JSON renderer: the result model as it is (a run; a suite as
//! `{profile, runs, passed}`; a sweep as `{sweep, runs}`; a bench; an audit).

use std::io::{self, Write};

use serde::Serialize;

use super::{Document, Renderer};
use crate::model::{RunReport, SuiteReport, SweepReport};

/// Machine-readable results.
#[derive(Debug)]
pub struct Json;

fn write<T: Serialize>(value: &T, w: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, value).map_err(io::Error::other)?;
    writeln!(w)
}

/// An A/B comparison's document: the comparison, then every run in full.
#[derive(Serialize)]
struct AbDoc<'a> {
    ab: &'a crate::model::ab::AbReport,
    runs: &'a [RunReport],
}

/// A provider comparison's document: the comparison, then every run in full.
#[derive(Serialize)]
struct CompareDoc<'a> {
    compare: &'a crate::model::compare::CompareReport,
    runs: &'a [RunReport],
}

/// A matrix's document: the table, then every run in full.
#[derive(Serialize)]
struct MatrixDoc<'a> {
    matrix: &'a crate::model::matrix::MatrixReport,
    runs: &'a [RunReport],
}

/// A sweep's document (fields in this order).
#[derive(Serialize)]
struct SweepDoc<'a> {
    sweep: &'a SweepReport,
    runs: &'a [RunReport],
}

impl Renderer for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn supports(&self, doc: &Document<'_>) -> bool {
        !matches!(doc, Document::Profiles(_) | Document::Scenarios | Document::Faults)
    }

    fn render(&self, doc: &Document<'_>, w: &mut dyn Write) -> io::Result<()> {
        match doc {
            Document::Run(r) => write(r, w),
            Document::Suite { profile, runs } => write(
                &SuiteReport {
                    profile: profile.to_string(),
                    runs: runs.to_vec(),
                    passed: runs.iter().all(|r| r.passed),
                },
                w,
            ),
            Document::Sweep { sweep, runs } => write(&SweepDoc { sweep, runs }, w),
            Document::Bench(b) => write(b, w),
            Document::Ab { ab, runs } => write(&AbDoc { ab, runs }, w),
            Document::Compare { compare, runs } => write(&CompareDoc { compare, runs }, w),
            Document::Matrix { matrix, runs } => write(&MatrixDoc { matrix, runs }, w),
            Document::Audit { audit, .. } => write(audit, w),
            Document::Cleanup(c) => write(c, w),
            Document::Profiles(_) | Document::Scenarios | Document::Faults => Err(io::Error::other("not a result")),
        }
    }
}
