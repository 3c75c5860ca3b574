//! What `coordinator bench` reports: each tool's runs, the comparison per
//! dispatcher setting (ratios of medians, and the throughput ratio's
//! interval and verdict, derived here once), and the whole benchmark.

use serde::{Deserialize, Serialize};

use super::ceiling::Ceiling;
use crate::ab::stats::{Better, Verdict, ratio_of_medians, verdict as interval_verdict};
use crate::plan::ProviderKind;

/// One measured run of one tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub tool: String,
    pub dispatchers: String,
    pub completed: u64,
    pub orch_per_sec: f64,
    /// On Postgres (0 on SQLite, which has no commit counter).
    pub commits: u64,
    pub commits_per_orchestration: f64,
    /// CPU seconds of the process that ran the runtime (the stress module's
    /// own, or the agent's) over the run, from /proc.
    #[serde(default)]
    pub cpu_s: f64,
    /// `cpu_s` per 1,000 completed orchestrations.
    #[serde(default)]
    pub cpu_per_1000: f64,
    /// Failed, unfinished or not as expected (0 for a clean run).
    #[serde(default)]
    pub failed: u64,
    /// Why the run does not count as clean (empty: it does).
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Per setting: both tools' samples and the ratios of their medians.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub dispatchers: String,
    pub theirs: Vec<Sample>,
    pub ours: Vec<Sample>,
    /// median ours / median theirs
    pub throughput_ratio: f64,
    /// median ours / median theirs
    pub commits_ratio: f64,
    /// median ours / median theirs (CPU seconds per 1,000 orchestrations).
    #[serde(default)]
    pub cpu_ratio: f64,
    /// The throughput ratio's 95% percentile-bootstrap interval, as `ab`
    /// computes it (absent with too few runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_interval: Option<[f64; 2]>,
    /// What that interval says, judged as `ab` judges (a difference only
    /// when the interval excludes 1 and the ratio is 2% or more from it):
    /// on a shared machine one run can spread 10-20%, so a median ratio
    /// alone says little.
    #[serde(default = "unknown")]
    pub throughput_verdict: Verdict,
}

impl Comparison {
    /// Both tools' runs at one setting, with the ratios of their medians and
    /// the throughput ratio's interval and verdict.
    pub(super) fn of(dispatchers: &str, theirs: Vec<Sample>, ours: Vec<Sample>) -> Self {
        let m = |v: &[Sample], f: fn(&Sample) -> f64| median(v.iter().map(f).collect());
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        // Resampling one or two runs gives an interval of nothing.
        let estimate = (theirs.len().min(ours.len()) >= MIN_RUNS_FOR_INTERVAL)
            .then(|| {
                ratio_of_medians(
                    &theirs.iter().map(|s| s.orch_per_sec).collect::<Vec<_>>(),
                    &ours.iter().map(|s| s.orch_per_sec).collect::<Vec<_>>(),
                    BOOTSTRAP_SEED,
                )
            })
            .flatten();
        Comparison {
            dispatchers: dispatchers.to_string(),
            throughput_interval: estimate.map(|e| [e.low, e.high]),
            throughput_verdict: interval_verdict(estimate, Better::Higher, MIN_EFFECT),
            throughput_ratio: ratio(m(&ours, |s| s.orch_per_sec), m(&theirs, |s| s.orch_per_sec)),
            commits_ratio: ratio(
                m(&ours, |s| s.commits_per_orchestration),
                m(&theirs, |s| s.commits_per_orchestration),
            ),
            cpu_ratio: ratio(m(&ours, |s| s.cpu_per_1000), m(&theirs, |s| s.cpu_per_1000)),
            theirs,
            ours,
        }
    }
}

fn unknown() -> Verdict {
    Verdict::Unknown
}

/// A throughput difference smaller than this is not called (as in `ab`).
const MIN_EFFECT: f64 = 0.02;
/// Runs per tool before the ratio gets an interval.
const MIN_RUNS_FOR_INTERVAL: usize = 3;
/// Fixed, so a bench's interval can be recomputed from its JSON.
const BOOTSTRAP_SEED: u64 = 0x0062_656e_6368;

/// The whole benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// `postgres` or `sqlite-memory`.
    #[serde(default = "postgres")]
    pub provider: String,
    pub workload: String,
    pub repeat: u32,
    pub comparisons: Vec<Comparison>,
    /// The throughput target the user set, if any.
    #[serde(default)]
    pub min_throughput_ratio: Option<f64>,
    /// Every run clean and every target met.
    #[serde(default)]
    pub passed: bool,
    /// What failed, one line each.
    #[serde(default)]
    pub problems: Vec<String>,
    /// On in-memory SQLite: the highest open-loop rate one agent holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<Ceiling>,
}

fn postgres() -> String {
    ProviderKind::Postgres.as_str().into()
}

/// The median of `v` (0 for none).
pub fn median(v: Vec<f64>) -> f64 {
    if v.is_empty() { 0.0 } else { crate::ab::stats::median(&v) }
}
