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
    /// Completion queries that failed (and were retried next tick).
    #[serde(default)]
    pub status_query_errors: u64,
    /// Open loop: starts issued more than [`LATE_AFTER_MS`] after their
    /// intended time (the schedule fell behind).
    #[serde(default)]
    pub late: u64,
    /// Open loop: starts not issued because the in-flight cap was reached.
    #[serde(default)]
    pub dropped: u64,
}

/// An open-loop start issued later than this after its intended time is late.
pub const LATE_AFTER_MS: u64 = 10;

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
        self.status_query_errors += o.status_query_errors;
        self.late += o.late;
        self.dropped += o.dropped;
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
            status_query_errors: c.status_query_errors,
            late: c.late,
            dropped: c.dropped,
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
            status_query_errors: c.status_query_errors,
            late: c.late,
            dropped: c.dropped,
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
    /// Open loop: from each orchestration's intended start time until the
    /// runtime recorded its terminal status, so it includes any wait to be
    /// started (no coordinated omission). Absent in closed-loop runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_latency: Option<LatencySummary>,
}

impl Section {
    /// The latency a run is judged by: from the intended start in open loop,
    /// from the start call in closed loop.
    pub fn headline_latency(&self) -> &LatencySummary {
        self.intended_latency.as_ref().unwrap_or(&self.e2e_latency)
    }
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
            intended_latency: (h.intended.count() > 0).then(|| h.intended.summary()),
        }
    }
}

/// The three latency histograms every agent keeps (and the merge of them).
#[derive(Clone, Debug, Default)]
pub struct Histograms {
    pub e2e: LatencyHistogram,
    pub observed: LatencyHistogram,
    pub start: LatencyHistogram,
    /// Open loop only: from the intended start time.
    pub intended: LatencyHistogram,
}

impl Histograms {
    /// Merge another set into this one (exact).
    pub fn merge(&mut self, o: &Histograms) -> Result<(), crate::histogram::HistogramError> {
        self.e2e.merge(&o.e2e)?;
        self.observed.merge(&o.observed)?;
        self.start.merge(&o.start)?;
        self.intended.merge(&o.intended)
    }

    /// The histogram a run is judged by (see [`Section::headline_latency`]).
    pub fn headline(&self) -> &LatencyHistogram {
        if self.intended.count() > 0 { &self.intended } else { &self.e2e }
    }

    /// Forget every sample.
    pub fn reset(&mut self) {
        self.e2e.reset();
        self.observed.reset();
        self.start.reset();
        self.intended.reset();
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
    /// Connection-pool size of each provider in the agent process.
    #[serde(default)]
    pub pool_max: u32,
    #[serde(flatten)]
    pub section: Section,
    /// True when the agent was lost mid-run: its figures are what it streamed
    /// until then (see `RunReport::lost_agents`).
    #[serde(default)]
    pub lost: bool,
    /// The agent process's resident memory over the run.
    #[serde(default)]
    pub memory: MemorySummary,
}

/// One memory sample of an agent process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since the common start instant.
    pub t_s: f64,
    pub rss_mb: f64,
}

/// An agent's memory over a run: the samples (one a second) and what they say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySummary {
    pub start_mb: f64,
    pub end_mb: f64,
    pub peak_mb: f64,
    /// Least-squares slope after the first fifth of the run (warm-up), in MB
    /// per minute; absent with fewer than 5 samples after warm-up.
    pub growth_mb_per_min: Option<f64>,
    pub samples: Vec<MemorySample>,
}

impl MemorySummary {
    /// Summarise samples taken in time order.
    pub fn from_samples(samples: Vec<MemorySample>) -> Self {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return Self::default() };
        let warm = last.t_s * 0.2;
        let steady: Vec<&MemorySample> = samples.iter().filter(|s| s.t_s >= warm).collect();
        let growth_mb_per_min = (steady.len() >= 5).then(|| {
            let n = steady.len() as f64;
            let mt = steady.iter().map(|s| s.t_s).sum::<f64>() / n;
            let mm = steady.iter().map(|s| s.rss_mb).sum::<f64>() / n;
            let cov: f64 = steady.iter().map(|s| (s.t_s - mt) * (s.rss_mb - mm)).sum();
            let var: f64 = steady.iter().map(|s| (s.t_s - mt).powi(2)).sum();
            if var > 0.0 { cov / var * 60.0 } else { 0.0 }
        });
        MemorySummary {
            start_mb: first.rss_mb,
            end_mb: last.rss_mb,
            peak_mb: samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
            growth_mb_per_min,
            samples,
        }
    }
}

/// The correctness audit: what the schema itself says about a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// Instances of the run found in the schema.
    pub instances: u64,
    /// Instances the generator counted as launched (0 when unknown).
    pub launched: u64,
    /// Instances with exactly one execution, and that one terminal.
    pub terminal_once: u64,
    pub completed: u64,
    pub failed: u64,
    /// Instances whose current execution is not terminal (must be 0).
    pub not_terminal: u64,
    /// Instances with other than one execution (must be 0 for this workload).
    pub anomalies: u64,
    /// Completed instances whose output is not what the scenario returns.
    pub wrong_output: u64,
    /// Messages left in the orchestrator and worker queues (must be 0).
    pub queued: u64,
    /// ActivityCompleted events in the history, and how many there should be.
    pub activity_completions: u64,
    pub expected_activity_completions: u64,
    /// Activity executions counted where they ran (0 when unknown) and how
    /// many of them were redeliveries (executions beyond the history's count).
    pub activities_executed: u64,
    pub redeliveries: u64,
    /// What failed the audit, one line each (empty: passed).
    pub problems: Vec<String>,
    /// Remarks that do not fail it (extra instances, redeliveries).
    pub notes: Vec<String>,
}

impl Audit {
    /// True when nothing failed the audit.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
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

/// An agent lost mid-run, and what became of the orchestrations it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LostAgent {
    pub index: u32,
    pub address: String,
    /// Seconds after the common start instant.
    pub at_s: f64,
    pub reason: String,
    /// What it had reported until then.
    pub last_reported: Counts,
    /// Orchestrations it had in flight by its last report.
    pub in_flight_at_loss: u64,
    /// Its instances as the database shows them after the others drained.
    pub instances_in_db: u64,
    pub completed_in_db: u64,
    pub failed_in_db: u64,
    pub still_running: u64,
    /// Of its instances, completed after it was lost (by the runtimes' own
    /// clocks), so by other runtimes.
    pub completed_by_others: u64,
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
    /// Change of merged end-to-end p99, in percent (positive is slower).
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
    /// Where the database was (password masked), or "embedded".
    pub database: String,
    pub duroxide_version: String,
    pub duroxide_pg_version: String,
    pub profile: Profile,
    pub agents: Vec<AgentReport>,
    pub merged: Section,
    /// The correctness audit of the run's schema.
    pub audit: Audit,
    pub db_load: DbLoad,
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
    pub provider_errors: std::collections::BTreeMap<String, u64>,
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
    pub postgres_settings: std::collections::BTreeMap<String, String>,
}

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
}

/// Per-second series of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub merged: Vec<TimePoint>,
    /// One series per agent, in the order of [`RunReport::agents`].
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
    pub connections: std::collections::BTreeMap<String, u64>,
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
}

/// The headline latency at one percentile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    pub percentile: f64,
    pub latency_ms: f64,
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
    pub failed: u64,
    pub deadlocks: u64,
    pub rollbacks: u64,
    pub commits_per_sec: f64,
    /// Most backends waiting on locks in any sample.
    pub peak_lock_waits: u64,
    /// p99 within the SLO, nothing failed or dropped.
    pub within_slo: bool,
    /// The step's full run, for the HTML report and the JSON.
    #[serde(default)]
    pub run_id: String,
}

/// The result of `coordinator sweep`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// "rate" (open loop, orch/s) or "budget" (closed loop, in flight).
    pub mode: String,
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
    pub profile: Profile,
    pub environment: Environment,
    pub agents: usize,
}

impl RunReport {
    /// True when an agent was lost: the figures cover less than the plan.
    pub fn degraded(&self) -> bool {
        !self.lost_agents.is_empty()
    }
}

impl RunReport {
    /// Runs with equal keys are comparable: the same profile (and suite
    /// combination) against the same database host and environment. Other
    /// configuration changes are reported by [`Self::config_differences`], not
    /// hidden by refusing the comparison.
    pub fn comparable_key(&self) -> String {
        let combo = if self.profile.suite.is_empty() { String::new() } else { self.profile.dispatchers() };
        format!("{}|{combo}|{}|cloud={}", self.profile.name, self.environment.db_host, self.environment.cloud)
    }

    /// How this run's configuration differs from `other`'s ("dispatchers 2:2 -> 1:1").
    pub fn config_differences(&self, other: &RunReport) -> Vec<String> {
        use crate::config::format_duration as d;
        let (a, b) = (&other.profile, &self.profile);
        let opt = |v: Option<u32>| v.map_or("default".to_string(), |n| n.to_string());
        let fields = [
            ("max_concurrent", a.max_concurrent.to_string(), b.max_concurrent.to_string()),
            ("duration", d(a.duration), d(b.duration)),
            ("tasks", a.tasks_per_instance.to_string(), b.tasks_per_instance.to_string()),
            ("activity_delay", d(a.activity_delay), d(b.activity_delay)),
            ("dispatchers", a.dispatchers(), b.dispatchers()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_growth_is_fitted_after_warm_up() {
        // 100 s of samples: a jump during warm-up, then +1 MB every 10 s (6 MB/min).
        let samples: Vec<MemorySample> = (0..=100)
            .map(|t| {
                let t = t as f64;
                MemorySample { t_s: t, rss_mb: if t < 10.0 { 20.0 + t } else { 40.0 + t / 10.0 } }
            })
            .collect();
        let m = MemorySummary::from_samples(samples);
        assert_eq!((m.start_mb, m.end_mb, m.peak_mb), (20.0, 50.0, 50.0));
        let g = m.growth_mb_per_min.expect("enough samples");
        assert!((g - 6.0).abs() < 1e-9, "{g}");
        assert_eq!(MemorySummary::from_samples(vec![]).growth_mb_per_min, None);
        let few = (0..3).map(|t| MemorySample { t_s: t as f64, rss_mb: 1.0 }).collect();
        assert_eq!(MemorySummary::from_samples(few).growth_mb_per_min, None);
    }

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
