//! A run over time: per-second points (per agent and merged), the database
//! sampled once a second on the same clock, and the percentile spectrum.

use std::collections::BTreeMap;

use loadgen_common::histogram::LatencyHistogram;
use serde::{Deserialize, Serialize};

pub use crate::faults::WriteOutage;

/// One second of a run, for one agent or merged. Counts are of the interval;
/// latencies come from the interval's histogram (merged exactly across
/// agents), the headline latency (from the intended start in open loop).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimePoint {
    /// End of the interval, seconds since the common start.
    pub t_s: f64,
    pub launched: u64,
    pub completed: u64,
    pub failed: u64,
    #[serde(default)]
    pub late: u64,
    #[serde(default)]
    pub dropped: u64,
    /// Orchestrations in flight at the end of the interval.
    pub in_flight: u64,
    /// Completions per second in the interval.
    pub orch_per_sec: f64,
    /// 0 when nothing completed in the interval.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Merged series only: the load the plan offered in the interval,
    /// cluster-wide (starts per second in open loop, the in-flight target at
    /// its end in closed loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered: Option<f64>,
    /// `failed` by category.
    #[serde(default, skip_serializing_if = "Failures::is_empty")]
    pub failures: Failures,
}

/// Failed orchestrations and start calls by category: what a fault's
/// failures were. `application` excludes the failures a scenario designs
/// (`by_design`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    #[serde(default)]
    pub infrastructure: u64,
    #[serde(default)]
    pub configuration: u64,
    #[serde(default)]
    pub application: u64,
    #[serde(default)]
    pub poison: u64,
    #[serde(default)]
    pub start_errors: u64,
    #[serde(default)]
    pub by_design: u64,
}

impl Failures {
    pub fn of(c: &loadgen_common::tally::Counts) -> Self {
        Failures {
            infrastructure: c.failed_infrastructure,
            configuration: c.failed_configuration,
            application: c.failed_application.saturating_sub(c.expected_failures),
            poison: c.failed_poison,
            start_errors: c.start_errors,
            by_design: c.expected_failures.min(c.failed()),
        }
    }

    pub fn add(&mut self, o: &Failures) {
        self.infrastructure += o.infrastructure;
        self.configuration += o.configuration;
        self.application += o.application;
        self.poison += o.poison;
        self.start_errors += o.start_errors;
        self.by_design += o.by_design;
    }

    pub fn is_empty(&self) -> bool {
        *self == Failures::default()
    }

    /// Non-zero categories, for people: `2 infrastructure, 1 start error`
    /// (`none` when there are none).
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.infrastructure, "infrastructure"),
            (self.configuration, "configuration"),
            (self.application, "application"),
            (self.poison, "poison"),
            (self.start_errors, "start error(s)"),
            (self.by_design, "by design"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() { "none".into() } else { parts.join(", ") }
    }
}

/// The run's load stages against what was achieved in each.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StagesReport {
    /// The plan as points (`10/s,30s:10/s,...`).
    pub plan: String,
    /// Rates (open loop) or in-flight targets (closed loop).
    pub open: bool,
    pub rows: Vec<StageRow>,
}

/// One stage (or, for a long shape, one window of it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageRow {
    pub from_s: f64,
    pub to_s: f64,
    /// The plan's value at the start and end of the stage.
    pub start_value: f64,
    pub end_value: f64,
    /// Mean offered load (starts/s, or in-flight target) over the whole
    /// seconds the achieved figures come from: those whose middle falls in
    /// the stage.
    pub offered: f64,
    /// Achieved: starts and completions per second, mean in flight.
    pub launched_per_sec: f64,
    pub completed_per_sec: f64,
    pub mean_in_flight: f64,
    /// The worst one-second p99 in the stage (0 when nothing completed).
    pub worst_p99_ms: f64,
}

/// Per-second series of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub merged: Vec<TimePoint>,
    /// One series per agent, in the order of the run's agents.
    pub agents: Vec<Vec<TimePoint>>,
}

/// One sample of the database, taken by the coordinator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbSample {
    /// Seconds since the common start (negative before it).
    pub t_s: f64,
    pub commits_per_sec: f64,
    pub rollbacks_per_sec: f64,
    /// Deadlocks detected since the previous sample.
    pub deadlocks: u64,
    /// Connections to the database by state (active, idle, idle in transaction, ...).
    pub connections: BTreeMap<String, u64>,
    /// Backends waiting on a lock (wait_event_type = 'Lock') at the sample.
    pub lock_waits: u64,
    /// Backends waiting on an advisory lock at the sample.
    #[serde(default)]
    pub advisory_lock_waits: u64,
    /// duroxide-pg's queue depths (`get_queue_depths`): orchestrator, worker, timer.
    pub orchestrator_queue: u64,
    pub worker_queue: u64,
    pub timer_queue: u64,
    /// Orchestrations completed in the run so far (for commits per orchestration).
    #[serde(default)]
    pub completed: u64,
    /// The provider's dequeues in the second before the sample (with
    /// `pg_stat_statements`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetches: Option<FetchSample>,
}

/// The dequeues of one second: calls, and the calls that returned nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSample {
    pub orchestration_calls: u64,
    pub orchestration_empty: u64,
    pub work_calls: u64,
    pub work_empty: u64,
}

/// The headline latency at one percentile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    pub percentile: f64,
    pub latency_ms: f64,
}

/// A run's interval histograms, for HdrHistogram interval logs: (end of
/// the interval in seconds since the start, its histogram), merged and per
/// agent. Kept only when logs were asked for.
#[derive(Clone, Debug)]
pub struct IntervalLogs {
    pub run_id: String,
    /// The wall-clock common start.
    pub start: std::time::SystemTime,
    pub merged: Vec<(f64, LatencyHistogram)>,
    pub agents: Vec<Vec<(f64, LatencyHistogram)>>,
}

/// One fault as it was applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub kind: String,
    pub target: String,
    /// When it began and ended, seconds after the common start.
    pub at_s: f64,
    pub end_s: f64,
    /// What it did ("7 of 12 backends terminated").
    pub detail: String,
    /// Why it could not be applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The share of the load still offered after it (kill-agent: the
    /// surviving agents' share); recovery is judged against the level
    /// before times this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_kept: Option<f64>,
    /// A change of leader (`switchover`, `failover`): writes through the
    /// write endpoint, probed while it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<WriteOutage>,
}

impl FaultReport {
    /// " (57P01 in ack_orchestration_item: 1)": the undesigned failures by error.
    pub fn by_error(&self) -> String {
        if self.failed_by_error.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self.failed_by_error.iter().map(|(e, n)| format!("{e}: {n}")).collect();
        format!(" ({})", parts.join(", "))
    }
}

/// A fault and what it did to the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    #[serde(flatten)]
    pub event: FaultEvent,
    /// Throughput (completions/s) and p99 (ms) over the seconds before the
    /// fault, and during it (its seconds, at least one).
    pub before_orch_per_sec: f64,
    pub before_p99_ms: f64,
    pub during_orch_per_sec: f64,
    pub during_p99_ms: f64,
    /// Orchestrations that failed (failures the scenario designs included)
    /// and start calls that failed, from the fault's start until it
    /// recovered (or the run ended).
    pub failed_during: u64,
    /// `failed_during` by category.
    #[serde(default)]
    pub failures: Failures,
    /// Of those, the failures no scenario designs, by the SQLSTATE their
    /// stored message is Postgres's wording of and the provider call that
    /// met it ("57P01 in ack_orchestration_item"), read after the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_by_error: BTreeMap<String, u64>,
    /// From the fault's end until throughput (over two seconds) was back
    /// to `recovery_orch_per_sec` and p99 under `recovery_p99_ms`; `None`:
    /// not within the run.
    #[serde(default)]
    pub recovery_s: Option<f64>,
    /// The bars a recovery is judged by: the level before the fault less the
    /// wider of 10% and three robust standard deviations of its seconds
    /// (at most 35% of the level), and the larger of twice the p99 before and
    /// that p99 plus three robust standard deviations (`None`: nothing
    /// completed before the fault).
    #[serde(default)]
    pub recovery_orch_per_sec: f64,
    #[serde(default)]
    pub recovery_p99_ms: Option<f64>,
}
