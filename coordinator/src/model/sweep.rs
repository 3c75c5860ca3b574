//! A capacity sweep's result: one step per offered load, the knee, the
//! highest throughput within the SLO, why it stopped, and its verdict.

use serde::{Deserialize, Serialize};

use super::run::Environment;
use crate::plan::ProfilePlan;

/// What a sweep raises step by step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SweepMode {
    /// Open-loop arrival rate (orchestrations per second), latency from the
    /// intended start: the honest way to find a latency SLO's limit.
    #[default]
    Rate,
    /// Closed-loop in-flight budget.
    Budget,
}

impl SweepMode {
    /// The name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            SweepMode::Rate => "rate",
            SweepMode::Budget => "budget",
        }
    }

    /// An offered load for people ("40/s offered", "20 in flight").
    pub fn describe(&self, offered: f64) -> String {
        match self {
            SweepMode::Rate => format!("{offered}/s offered"),
            SweepMode::Budget => format!("{offered} in flight"),
        }
    }
}

/// One step of a capacity sweep.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    /// Offered load: orchestrations per second (open loop) or in-flight
    /// budget (closed loop), see [`SweepReport::mode`].
    pub offered: f64,
    /// Completed orchestrations per second.
    pub achieved_orch_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_latency_ms: f64,
    /// Mean orchestrations in flight, sampled each second.
    pub mean_in_flight: f64,
    /// Little's law: achieved throughput x mean latency (should match mean_in_flight).
    pub littles_law_in_flight: f64,
    pub late: u64,
    pub dropped: u64,
    /// Instances that did not end as their scenario expects (failures by design
    /// excluded), did not start, or did not finish.
    pub failed: u64,
    pub deadlocks: u64,
    pub rollbacks: u64,
    pub commits_per_sec: f64,
    /// Most backends waiting on locks in any sample.
    pub peak_lock_waits: u64,
    /// p99 within the SLO, nothing failed or dropped, audit passed.
    pub within_slo: bool,
    /// The step's audit passed.
    #[serde(default)]
    pub audit_passed: bool,
    /// An agent was lost during the step.
    #[serde(default)]
    pub degraded: bool,
    /// The step's full run, for the HTML report and the JSON.
    #[serde(default)]
    pub run_id: String,
}

/// The result of `coordinator sweep`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub mode: SweepMode,
    pub slo_p99_ms: f64,
    pub steps: Vec<SweepStep>,
    /// Index in `steps` of the knee: the last step that met the SLO before
    /// latency rose or throughput stopped growing.
    pub knee: Option<usize>,
    /// Highest achieved throughput of a step within the SLO.
    pub max_sustainable_orch_per_sec: Option<f64>,
    /// Why the sweep stopped.
    pub stop_reason: String,
    /// What to configure, with the measured numbers behind it.
    pub recommendation: Vec<String>,
    /// The configuration every step shared.
    pub profile: ProfilePlan,
    pub environment: Environment,
    pub agents: usize,
    /// True when a step met the SLO and no step failed its audit or lost an agent.
    #[serde(default)]
    pub passed: bool,
    /// Steps that failed their audit or lost an agent, one line each.
    #[serde(default)]
    pub problems: Vec<String>,
}
