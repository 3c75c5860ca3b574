//! An A/B comparison of two builds: every repetition's figures, and per
//! metric the candidate's median over the baseline's with its interval and
//! a verdict.

use serde::{Deserialize, Serialize};

/// Which build a run used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Build {
    Baseline,
    Candidate,
}

impl Build {
    pub fn as_str(self) -> &'static str {
        match self {
            Build::Baseline => "baseline",
            Build::Candidate => "candidate",
        }
    }
}

/// One build: its agent binary and what it reported of itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The agent binary.
    pub agent: String,
    /// Extra environment its agents ran with (`KEY=VALUE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The duroxide and duroxide-pg versions its agents announced.
    pub duroxide_version: String,
    pub duroxide_pg_version: String,
}

/// One repetition's headline figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbRun {
    pub build: Build,
    /// Its figures (`order`: the position in the alternating order).
    #[serde(flatten)]
    pub figures: super::RunFigures,
}

/// What an interval says about the candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Faster,
    Slower,
    NoSignificantDifference,
    /// Too few measurements (or a zero baseline) to say anything.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::NoSignificantDifference => "no significant difference",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One metric across the repetitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbMetric {
    pub name: String,
    /// "higher" or "lower": which way is better.
    pub better: String,
    pub baseline: Vec<f64>,
    pub candidate: Vec<f64>,
    pub baseline_median: f64,
    pub candidate_median: f64,
    /// candidate median / baseline median, and its 95% interval (None
    /// without enough data).
    pub ratio: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub verdict: Verdict,
}

/// The comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbReport {
    pub profile: String,
    pub repeat: u32,
    /// Smallest change called faster or slower (percent).
    pub min_effect_pct: f64,
    pub baseline: BuildInfo,
    pub candidate: BuildInfo,
    /// Headline metrics: orch/s, p50, p99, commits per orchestration.
    pub metrics: Vec<AbMetric>,
    /// Per stored procedure: mean time per call, and calls per orchestration.
    #[serde(default)]
    pub procedures: Vec<AbMetric>,
    pub runs: Vec<AbRun>,
    /// Every run passed its gates and audit.
    pub passed: bool,
    /// What failed, run by run.
    #[serde(default)]
    pub problems: Vec<String>,
    /// The runs' warnings, each once, with its build ("candidate: the
    /// agents' build migrated the schema to a version ...").
    #[serde(default)]
    pub notes: Vec<String>,
}

impl AbReport {
    /// The headline metric called `name`.
    pub fn metric(&self, name: &str) -> Option<&AbMetric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}
