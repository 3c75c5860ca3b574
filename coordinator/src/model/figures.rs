//! One run's headline figures, as the commands that set runs side by side
//! (`ab`, `compare`) keep them: taken from the run's report in one place.

use serde::{Deserialize, Serialize};

use super::RunReport;

/// A run's headline figures and where it stood in the order runs ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFigures {
    /// Position in the order the runs ran (1-based).
    pub order: usize,
    pub run_id: String,
    /// Its gates passed and no agent was lost.
    pub passed: bool,
    pub orch_per_sec: f64,
    /// The headline latency's p50 and p99.
    pub p50_ms: f64,
    pub p99_ms: f64,
    #[serde(default)]
    pub commits_per_orchestration: f64,
}

impl RunFigures {
    pub fn of(r: &RunReport, order: usize) -> Self {
        let l = r.merged.headline_latency();
        RunFigures {
            order,
            run_id: r.run_id.clone(),
            passed: r.passed && !r.degraded(),
            orch_per_sec: r.merged.orch_per_sec,
            p50_ms: l.p50_us as f64 / 1000.0,
            p99_ms: l.p99_us as f64 / 1000.0,
            commits_per_orchestration: r.db_load.commits_per_orchestration,
        }
    }
}
