//! The result model: one [`RunReport`] that every renderer (text table, JSON,
//! and later markdown and HTML) reads. Agents send counts and histograms over
//! the wire; the coordinator builds this model from them after merging.

use serde::{Deserialize, Serialize};

use crate::config::Profile;
use crate::histogram::{LatencyHistogram, LatencySummary};
use crate::proto;

/// Outcome counts of one agent, an interval, or the merged run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Orchestrations whose start call succeeded.
    pub launched: u64,
    pub completed: u64,
    pub failed_infrastructure: u64,
    pub failed_configuration: u64,
    pub failed_application: u64,
    pub failed_poison: u64,
    /// Start calls that returned an error (counted apart from `launched`).
    pub start_errors: u64,
    /// Launched but not terminal when the drain deadline passed.
    pub unfinished: u64,
    /// Activity executions, counted where they ran.
    pub activities: u64,
    /// Batched completion queries the generator made (its own database load).
    pub status_queries: u64,
    /// End-to-end samples clamped because the database's completion time fell
    /// outside [start call, observation] (clock skew between machines).
    pub latency_clamped: u64,
}

impl Counts {
    /// Orchestrations that reached `Failed`, all categories.
    pub fn failed(&self) -> u64 {
        self.failed_infrastructure + self.failed_configuration + self.failed_application + self.failed_poison
    }

    /// Completed as a percentage of launched (0 when nothing launched).
    pub fn success_pct(&self) -> f64 {
        if self.launched == 0 { 0.0 } else { self.completed as f64 * 100.0 / self.launched as f64 }
    }

    /// Add another set of counts into this one.
    pub fn add(&mut self, o: &Counts) {
        self.launched += o.launched;
        self.completed += o.completed;
        self.failed_infrastructure += o.failed_infrastructure;
        self.failed_configuration += o.failed_configuration;
        self.failed_application += o.failed_application;
        self.failed_poison += o.failed_poison;
        self.start_errors += o.start_errors;
        self.unfinished += o.unfinished;
        self.activities += o.activities;
        self.status_queries += o.status_queries;
        self.latency_clamped += o.latency_clamped;
    }
}

impl From<&proto::Counts> for Counts {
    fn from(c: &proto::Counts) -> Self {
        Counts {
            launched: c.launched,
            completed: c.completed,
            failed_infrastructure: c.failed_infrastructure,
            failed_configuration: c.failed_configuration,
            failed_application: c.failed_application,
            failed_poison: c.failed_poison,
            start_errors: c.start_errors,
            unfinished: c.unfinished,
            activities: c.activities,
            status_queries: c.status_queries,
            latency_clamped: c.latency_clamped,
        }
    }
}

impl From<&Counts> for proto::Counts {
    fn from(c: &Counts) -> Self {
        proto::Counts {
            launched: c.launched,
            completed: c.completed,
            failed_infrastructure: c.failed_infrastructure,
            failed_configuration: c.failed_configuration,
            failed_application: c.failed_application,
            failed_poison: c.failed_poison,
            start_errors: c.start_errors,
            unfinished: c.unfinished,
            activities: c.activities,
            status_queries: c.status_queries,
            latency_clamped: c.latency_clamped,
        }
    }
}

/// Figures of one agent or of the merged run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub counts: Counts,
    /// From the common start instant to the end of the drain.
    pub elapsed_s: f64,
    pub orch_per_sec: f64,
    pub activities_per_sec: f64,
    /// End-to-end: start call issued until the runtime recorded the terminal
    /// status (`executions.completed_at`, millisecond precision).
    pub e2e_latency: LatencySummary,
    /// Start call issued until the generator's completion query saw the
    /// terminal status (adds up to one completion-poll interval).
    pub observed_latency: LatencySummary,
    /// Duration of the start call itself.
    pub start_latency: LatencySummary,
}

impl Section {
    /// Derive rates and percentiles from counts and histograms.
    pub fn new(counts: Counts, elapsed_s: f64, h: &Histograms) -> Self {
        let rate = |n: u64| if elapsed_s > 0.0 { n as f64 / elapsed_s } else { 0.0 };
        Section {
            orch_per_sec: rate(counts.completed),
            activities_per_sec: rate(counts.activities),
            counts,
            elapsed_s,
            e2e_latency: h.e2e.summary(),
            observed_latency: h.observed.summary(),
            start_latency: h.start.summary(),
        }
    }
}

/// The three latency histograms every agent keeps (and the merge of them).
#[derive(Clone, Debug, Default)]
pub struct Histograms {
    pub e2e: LatencyHistogram,
    pub observed: LatencyHistogram,
    pub start: LatencyHistogram,
}

impl Histograms {
    /// Merge another set into this one (exact).
    pub fn merge(&mut self, o: &Histograms) -> Result<(), crate::histogram::HistogramError> {
        self.e2e.merge(&o.e2e)?;
        self.observed.merge(&o.observed)?;
        self.start.merge(&o.start)
    }

    /// Forget every sample.
    pub fn reset(&mut self) {
        self.e2e.reset();
        self.observed.reset();
        self.start.reset();
    }
}

/// One agent's part of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    pub index: u32,
    pub address: String,
    pub hostname: String,
    /// Its slice of the cluster-wide concurrency budget.
    pub concurrency: u64,
    #[serde(flatten)]
    pub section: Section,
}

/// What the database itself says about the run's instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbCheck {
    /// Instances of this run found in the schema.
    pub instances: u64,
    /// Of those, with exactly one execution in `Completed`.
    pub completed_once: u64,
    /// Instances with more than one execution row, or none (must be 0).
    pub anomalies: u64,
    /// Instances whose current execution is still `Running`.
    pub running: u64,
    pub failed: u64,
}

/// The database's own activity during the run, and the generator's share of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbLoad {
    /// Transactions committed in the database during the run (`pg_stat_database`).
    pub commits: u64,
    pub rollbacks: u64,
    /// Commits per completed orchestration.
    pub commits_per_orchestration: f64,
    /// Calls the generator itself made: start calls, completion queries, failure look-ups.
    pub generator_calls: u64,
    /// Completion-tracking queries alone.
    pub completion_queries: u64,
    /// `completion_queries / commits` in percent.
    pub completion_share_pct: f64,
    /// `generator_calls / commits` in percent.
    pub generator_share_pct: f64,
}

/// One must-pass gate and how the run fared against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub name: String,
    pub limit: String,
    pub value: String,
    pub passed: bool,
}

/// The whole result of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub tool_version: String,
    pub run_id: String,
    pub schema: String,
    /// RFC 3339 start time (UTC).
    pub started_at: String,
    /// Where the database was (password masked), or "embedded".
    pub database: String,
    pub duroxide_version: String,
    pub duroxide_pg_version: String,
    pub profile: Profile,
    pub agents: Vec<AgentReport>,
    pub merged: Section,
    pub db_check: DbCheck,
    pub db_load: DbLoad,
    pub gates: Vec<Gate>,
    pub passed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_and_derive() {
        let mut a =
            Counts { launched: 10, completed: 8, failed_application: 1, failed_poison: 1, ..Default::default() };
        let b = Counts { launched: 5, completed: 5, activities: 25, ..Default::default() };
        a.add(&b);
        assert_eq!((a.launched, a.completed, a.failed(), a.activities), (15, 13, 2, 25));
        assert!((a.success_pct() - 13.0 * 100.0 / 15.0).abs() < 1e-9);
        assert_eq!(Counts::default().success_pct(), 0.0);
        let wire: proto::Counts = (&a).into();
        assert_eq!(Counts::from(&wire), a);
    }
}
