//! A robustness matrix: one short run per fault (each error class the server
//! can answer, each timing fault), per build, and what each did to the work:
//! calls hit, the provider's own retries, orchestrations failed by category,
//! messages processed twice, work lost, the recovery time and a verdict.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::timeline::Failures;

/// What a fault did to the work, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Work the client saw accepted is gone, stuck or invisible.
    LosesWork,
    /// A message was processed more than once.
    DuplicatesWork,
    /// Orchestrations failed that their scenario expects to complete.
    FailsWork,
    /// Nothing of the above: the runtime and provider rode it out.
    Tolerated,
    /// The fault could not be applied (its cell says why).
    NotApplied,
}

impl Verdict {
    pub const ALL: [Verdict; 5] =
        [Verdict::LosesWork, Verdict::DuplicatesWork, Verdict::FailsWork, Verdict::Tolerated, Verdict::NotApplied];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::LosesWork => "loses work",
            Verdict::DuplicatesWork => "duplicates work",
            Verdict::FailsWork => "fails work",
            Verdict::Tolerated => "tolerated",
            Verdict::NotApplied => "not applied",
        }
    }

    /// The verdict written `text` (as [`Self::as_str`] gives it).
    pub fn parse(text: &str) -> Option<Verdict> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fault on one build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixCell {
    /// The build's label ("0.1.38", or this tool's own build).
    pub build: String,
    /// The run that carried it out (in the document's `runs`).
    pub run_id: String,
    /// What the fault did, as its report says it.
    pub detail: String,
    /// sqlstate faults: calls answered with the error, of the calls made
    /// while it lasted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// Calls duroxide-pg retried itself (its "Retryable error, will retry"),
    /// and provider errors that reached the runtime.
    pub retried: u64,
    pub surfaced: u64,
    /// Orchestrations failed (and start calls) by category; failures the
    /// scenarios design are not counted.
    pub failed: Failures,
    pub failed_total: u64,
    /// Messages processed again beyond their first time.
    pub processed_twice: u64,
    /// Work lost: acknowledged work not so at the end, instances not
    /// terminal at the end, and executions duroxide's client cannot see
    /// (no instance row).
    pub lost: u64,
    pub lost_acknowledged: u64,
    pub stuck: u64,
    pub invisible: u64,
    /// From the fault's end until the run was back (`None`: not within it).
    pub recovery_s: Option<f64>,
    pub verdict: Verdict,
    /// The verdict `--expect` names for it (tolerated when it names none).
    pub expected: Verdict,
    /// An agent was lost during the run.
    #[serde(default)]
    pub degraded: bool,
}

impl MatrixCell {
    /// It is as expected (and its run kept its agents).
    pub fn as_expected(&self) -> bool {
        self.verdict == self.expected && !self.degraded
    }

    /// "17 of 230", or "-" for a fault that does not count calls.
    pub fn hits_text(&self) -> String {
        match (self.hits, self.calls) {
            (Some(h), Some(c)) if self.verdict != Verdict::NotApplied => format!("{h} of {c}"),
            _ => "-".into(),
        }
    }

    /// "88 (infrastructure 88)", or "0".
    pub fn failed_text(&self) -> String {
        let f = &self.failed;
        let parts: Vec<String> = [
            ("infrastructure", f.infrastructure),
            ("configuration", f.configuration),
            ("application", f.application),
            ("poison", f.poison),
            ("start errors", f.start_errors),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
        if parts.is_empty() { "0".into() } else { format!("{} ({})", self.failed_total, parts.join(", ")) }
    }

    /// "50 (invisible 50)", or "0".
    pub fn lost_text(&self) -> String {
        let parts: Vec<String> =
            [("acknowledged", self.lost_acknowledged), ("stuck", self.stuck), ("invisible", self.invisible)]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
        if parts.is_empty() { "0".into() } else { format!("{} ({})", self.lost, parts.join(", ")) }
    }

    /// "1.0 s", or "not within the run".
    pub fn recovery_text(&self) -> String {
        self.recovery_s.map_or_else(|| "not within the run".into(), |s| format!("{s:.1} s"))
    }

    /// The verdict, with what was expected when it differs.
    pub fn verdict_text(&self) -> String {
        let mut t = self.verdict.to_string();
        if self.verdict != self.expected {
            t.push_str(&format!(" (expected {})", self.expected));
        }
        if self.degraded {
            t.push_str(" (an agent was lost)");
        }
        t
    }
}

/// One fault, on every build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixRow {
    /// How `--expect` names it: "57P01 on ack_orchestration_item", "restart-db".
    pub fault: String,
    /// What it is, for people ("admin_shutdown, every 5th call").
    pub about: String,
    pub cells: Vec<MatrixCell>,
    /// The builds' verdicts differ.
    pub differs: bool,
}

/// The whole matrix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatrixReport {
    pub profile: String,
    pub duration_s: f64,
    /// When each fault starts and how long it lasts.
    pub fault_at_s: f64,
    pub fault_for_s: f64,
    pub database: String,
    /// The builds, in column order.
    pub builds: Vec<String>,
    pub rows: Vec<MatrixRow>,
    /// Every cell as expected.
    pub passed: bool,
}

impl MatrixReport {
    /// The cells not as expected.
    pub fn unexpected(&self) -> impl Iterator<Item = (&MatrixRow, &MatrixCell)> {
        self.rows.iter().flat_map(|r| r.cells.iter().filter(|c| !c.as_expected()).map(move |c| (r, c)))
    }
}
