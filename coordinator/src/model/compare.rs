//! A comparison of providers on one workload: per dispatcher combination,
//! each provider's throughput (min / median / max over the repetitions) and
//! latency, and the Postgres/SQLite ratio next to the range the plan expects.

use serde::{Deserialize, Serialize};

use crate::plan::ProviderKind;

/// One provider at one combination, over the repetitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderCell {
    pub provider: ProviderKind,
    pub orch_per_sec: Vec<f64>,
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// Medians over the repetitions of each run's p50 and p99.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One dispatcher combination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// "2:2".
    pub dispatchers: String,
    pub cells: Vec<ProviderCell>,
    /// Postgres's median throughput over SQLite's (in memory when compared,
    /// else on a file), when both ran.
    pub ratio: Option<f64>,
}

/// One run of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareRun {
    pub provider: ProviderKind,
    pub dispatchers: String,
    #[serde(flatten)]
    pub figures: super::RunFigures,
}

/// The comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    pub profile: String,
    pub repeat: u32,
    pub providers: Vec<ProviderKind>,
    /// Where Postgres ran ("throwaway Postgres on ...", or the masked URL).
    pub database: String,
    /// What the plan this product grew from expects of the ratio here
    /// ("70-90%" for a local Postgres, "20-40%" for a remote one).
    pub expected: Option<String>,
    pub rows: Vec<CompareRow>,
    pub runs: Vec<CompareRun>,
    /// Every run passed its gates and audit.
    pub passed: bool,
    #[serde(default)]
    pub problems: Vec<String>,
}
