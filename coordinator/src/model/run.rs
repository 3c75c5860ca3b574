//! One run's result: per agent, per scenario and merged figures, the
//! per-instance audit, the gates, the database load and contention.

use std::collections::BTreeMap;

use loadgen_common::histogram::LatencySummary;
use serde::{Deserialize, Serialize};

pub use super::agent::{AgentReport, ClockRange, ClockReading, LostAgent, MemorySample, MemorySummary};
use super::audit::{Audit, ScenarioAudit};
pub use super::section::{Section, headline_histogram};
use super::timeline::{DbSample, SpectrumPoint, Timeline};
use crate::plan::ProfilePlan;

/// One scenario's part of the run, merged over every agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    #[serde(flatten)]
    pub section: Section,
    /// Counts the driver kept for this scenario (events raised, cancellations...).
    #[serde(default)]
    pub facts: BTreeMap<String, u64>,
    /// Latencies read from the history after the run (timer lateness, event latency).
    #[serde(default)]
    pub history_latencies: Vec<HistoryLatency>,
    /// The audit of this scenario's instances.
    #[serde(default)]
    pub audit: ScenarioAudit,
}

/// A latency the audit read from the history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryLatency {
    pub name: String,
    pub latency: LatencySummary,
}

/// The workload a run drove.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    pub scenario: String,
    /// Every option with the value used.
    pub options: BTreeMap<String, String>,
    pub seed: u64,
}

/// The database's own activity during the run, and the generator's share of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbLoad {
    /// Transactions committed in the database during the run (`pg_stat_database`).
    pub commits: u64,
    pub rollbacks: u64,
    /// Commits per completed orchestration.
    pub commits_per_orchestration: f64,
    /// Calls the generator itself made: start calls, completion queries and
    /// the database sampler's queries.
    pub generator_calls: u64,
    /// Completion-tracking queries alone (the coordinator's with cluster
    /// tracking, the agents' with agent tracking).
    pub completion_queries: u64,
    /// `completion_queries / commits` in percent.
    pub completion_share_pct: f64,
    /// `generator_calls / commits` in percent.
    pub generator_share_pct: f64,
    /// Who made the completion queries: "cluster" (the coordinator) or
    /// "agent". Was `completion_tracking` (still read, for one release).
    #[serde(default, alias = "completion_tracking")]
    pub completion_source: String,
    /// Completion queries per completed orchestration.
    #[serde(default)]
    pub completion_queries_per_orchestration: f64,
    /// The coordinator's database sampler (counters, connections, queues).
    #[serde(default)]
    pub sampling_queries: u64,
    /// Times the server's statistics were reset during the run (a crash
    /// restart discards them): `commits` and `rollbacks` are then summed
    /// over the segments between resets, from the once-a-second samples,
    /// and miss what the server did between the last sample and each reset.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stats_resets: u32,
    /// The generator's overhead beyond its start calls: completion and
    /// sampling queries, and their share of commits in percent.
    #[serde(default)]
    pub overhead_calls: u64,
    #[serde(default)]
    pub overhead_share_pct: f64,
}

/// What contention the run met: from the database's counters and samples,
/// and the provider's own retries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Contention {
    /// Deadlocks the server detected during the run (`pg_stat_database`).
    pub deadlocks: u64,
    /// Backends waiting on a lock, peak and mean over the samples.
    pub peak_lock_waits: u64,
    pub mean_lock_waits: f64,
    /// Of those, waits on advisory locks (duroxide-pg's instance locks).
    pub peak_advisory_lock_waits: u64,
    pub mean_advisory_lock_waits: f64,
    /// Provider calls the runtimes retried, "operation/error_type" -> count.
    pub provider_retries: BTreeMap<String, u64>,
    /// Samples the figures above come from.
    pub samples: u64,
}

/// One must-pass gate and how the run fared against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub name: String,
    pub limit: String,
    pub value: String,
    pub passed: bool,
}

/// Where and from what a run was made, for tracking results over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// File-name-safe label of the database host ("embedded" for a throwaway cluster).
    pub db_host: String,
    /// Marked as a remote/cloud database (--track-cloud).
    pub cloud: bool,
    /// Git commit and branch of the working directory, when it is a checkout.
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// Host name and CPU count of the machine the coordinator ran on.
    pub machine: String,
    pub cpus: usize,
    /// `server_version` of the database.
    pub postgres_version: String,
}

/// The result of comparing a run with an earlier comparable one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// What was compared against ("tracked run 2026-11-26T10:00:00Z (abc123)" or a file).
    pub against: String,
    pub baseline_orch_per_sec: f64,
    pub baseline_p99_us: u64,
    /// Change of merged orch/s, in percent (negative is slower).
    pub throughput_change_pct: f64,
    /// Change of the merged headline p99, in percent (positive is slower).
    pub p99_change_pct: f64,
    /// Throughput dropped more than 20% or p99 rose more than 50%.
    pub regressed: bool,
    /// Configuration that differs from the baseline's (empty: same configuration).
    #[serde(default)]
    pub config_differences: Vec<String>,
}

/// The whole result of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub tool_version: String,
    pub run_id: String,
    pub schema: String,
    /// RFC 3339 start time (UTC).
    pub started_at: String,
    /// Where the database was (password masked), or "throwaway Postgres on
    /// HOST:PORT" for the embedded default.
    pub database: String,
    pub duroxide_version: String,
    pub duroxide_pg_version: String,
    pub profile: ProfilePlan,
    /// The scenario (or mix) driven, with every option and the seed.
    #[serde(default)]
    pub workload: WorkloadReport,
    pub agents: Vec<AgentReport>,
    pub merged: Section,
    /// Per scenario (a mix has one each), merged over the agents.
    #[serde(default)]
    pub scenarios: Vec<ScenarioReport>,
    /// The per-instance correctness audit of the run's schema.
    pub audit: Audit,
    pub db_load: DbLoad,
    /// Deadlocks, lock waits and the provider's retries.
    #[serde(default)]
    pub contention: Contention,
    pub gates: Vec<Gate>,
    pub passed: bool,
    /// Should-gates that did not hold (regression, memory growth): warnings
    /// unless --fail-on-regression turned them into failed gates.
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub comparison: Option<Comparison>,
    #[serde(default)]
    pub environment: Environment,
    /// Agents lost mid-run; a run with any is degraded.
    #[serde(default)]
    pub lost_agents: Vec<LostAgent>,
    /// Provider errors the runtimes met and retried, "operation/error_type" -> count.
    #[serde(default)]
    pub provider_errors: BTreeMap<String, u64>,
    /// Per-second figures, merged and per agent.
    #[serde(default)]
    pub timeline: Timeline,
    /// The database sampled once a second by the coordinator, on the same
    /// clock as [`Self::timeline`].
    #[serde(default)]
    pub db_timeline: Vec<DbSample>,
    /// The merged headline latency at percentiles from 0 to 99.9999, for the
    /// percentile-spectrum chart.
    #[serde(default)]
    pub spectrum: Vec<SpectrumPoint>,
    /// Postgres settings that shape the result (max_connections, shared_buffers, ...).
    #[serde(default)]
    pub postgres_settings: BTreeMap<String, String>,
    /// What following the run cost the coordinator itself.
    #[serde(default)]
    pub coordinator: CoordinatorCost,
    /// Load stages, when the load changed over time: offered against achieved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<super::StagesReport>,
    /// The faults injected, each with its impact and recovery time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<super::FaultReport>,
    /// The run's database time by stored procedure and statement, and the
    /// dequeues' empty share (Postgres).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedures: Option<super::procedures::ProcedureReport>,
    /// Which duroxide provider the runtimes used.
    #[serde(default)]
    pub provider: crate::plan::ProviderKind,
    /// `--abort-on-fail` stopped the run early: which gate was lost, when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<Aborted>,
}

/// A gate lost while the run went, which stopped every agent
/// (`--abort-on-fail`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Aborted {
    /// The gate, as the gates table names it.
    pub gate: String,
    /// Seconds since the common start.
    pub at_s: f64,
    /// What was seen.
    pub detail: String,
}

/// The coordinator's own cost over a run: from the start of the agents' Run
/// calls to the end of the follow (fan-in, live view, completion tracking).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CoordinatorCost {
    /// CPU seconds (user + system) of the coordinator process.
    pub cpu_s: f64,
    /// Wall seconds of the same span.
    pub wall_s: f64,
    /// Resident memory at the end of the follow, MB.
    pub rss_mb: f64,
}

impl RunReport {
    /// True when the run started on a schedule (open loop).
    pub fn open_loop(&self) -> bool {
        self.profile.open_loop()
    }

    /// True when an agent was lost: the figures cover less than the plan.
    pub fn degraded(&self) -> bool {
        self.lost_agents.iter().any(|l| !l.planned)
    }

    /// Runs with equal keys are comparable: the same profile (and suite
    /// combination) against the same database host and environment. Other
    /// configuration changes are reported by [`Self::config_differences`], not
    /// hidden by refusing the comparison.
    pub fn comparable_key(&self) -> String {
        let combo = if self.profile.in_suite() { self.profile.dispatchers.to_string() } else { String::new() };
        format!("{}|{combo}|{}|cloud={}", self.profile.name, self.environment.db_host, self.environment.cloud)
    }

    /// How this run's configuration differs from `other`'s ("dispatchers 2:2 -> 1:1").
    pub fn config_differences(&self, other: &RunReport) -> Vec<String> {
        use loadgen_common::units::format_duration as d;
        let (a, b) = (&other.profile, &self.profile);
        let opt = |v: Option<u32>| v.map_or("default".to_string(), |n| n.to_string());
        let workload = |w: &WorkloadReport| {
            let mut t = w.scenario.clone();
            for (k, v) in &w.options {
                t.push_str(&format!(" {k}={v}"));
            }
            t
        };
        let fields = [
            ("load", a.load_phrase.clone(), b.load_phrase.clone()),
            ("duration", d(a.duration), d(b.duration)),
            ("workload", workload(&other.workload), workload(&self.workload)),
            ("dispatchers", a.dispatchers.to_string(), b.dispatchers.to_string()),
            ("runtimes_per_agent", a.runtimes_per_agent.to_string(), b.runtimes_per_agent.to_string()),
            ("pool_max", opt(a.pool_max), opt(b.pool_max)),
            ("poll_interval", d(a.poll_interval), d(b.poll_interval)),
            ("db_latency", d(a.db_latency), d(b.db_latency)),
            ("agents", other.agents.len().to_string(), self.agents.len().to_string()),
        ];
        fields.into_iter().filter(|(_, x, y)| x != y).map(|(name, x, y)| format!("{name} {x} -> {y}")).collect()
    }
}

/// The result of a suite: one run per dispatcher combination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    pub profile: String,
    pub runs: Vec<RunReport>,
    pub passed: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
