//! The text renderer: what a person reads at the end of a command.
//!
//! - [`run`]: one run's summary;
//! - [`lists`]: profiles, scenarios, a suite's table, an audit;
//! - [`procedures`]: the database time by stored procedure;
//! - [`sweep`]: a capacity sweep;
//! - [`bench`]: the side-by-side benchmark;
//! - [`ab`]: an A/B comparison of two builds;
//! - [`compare`]: providers side by side;
//! - [`matrix`]: a robustness matrix.

use std::io::{self, Write};

use super::{Document, Renderer};

pub mod ab;
pub mod audit;
pub mod bench;
pub mod compare;
pub mod lists;
pub mod matrix;
pub mod procedures;
pub mod run;
pub mod sweep;

/// Text for people.
#[derive(Debug)]
pub struct Text;

impl Renderer for Text {
    fn name(&self) -> &'static str {
        "text"
    }

    fn supports(&self, _: &Document<'_>) -> bool {
        true
    }

    fn render(&self, doc: &Document<'_>, w: &mut dyn Write) -> io::Result<()> {
        match doc {
            Document::Run(r) => run::render(r, w)?,
            Document::Suite { profile, runs } => {
                for r in *runs {
                    run::render(r, w)?;
                }
                lists::suite(profile, runs, w)?;
            }
            Document::Sweep { sweep: s, .. } => sweep::render(s, w)?,
            Document::Bench(b) => bench::render(b, w)?,
            Document::Ab { ab, .. } => ab::render(ab, w)?,
            Document::Compare { compare: c, .. } => compare::render(c, w)?,
            Document::Matrix { matrix, .. } => matrix::render(matrix, w)?,
            Document::Audit { schema, audit } => lists::audit(schema, audit, w)?,
            Document::Cleanup(c) => lists::cleanup(c, w)?,
            Document::Profiles(p) => lists::profiles(p, w)?,
            Document::Scenarios => lists::scenarios(w)?,
            Document::Faults => lists::faults(w)?,
        }
        w.flush()
    }
}
