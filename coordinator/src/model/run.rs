//! One run's result: per agent, per scenario and merged figures, the
//! per-instance audit, the gates, the database load and contention.

use std::collections::BTreeMap;

use loadgen_common::histogram::{LatencyHistogram, LatencySummary};
use loadgen_common::tally::{Counts, Histograms};
use serde::{Deserialize, Serialize};

use super::audit::{Audit, ScenarioAudit};
use super::timeline::{DbSample, SpectrumPoint, Timeline};
use crate::plan::profile::Profile;

/// Figures of one agent, one scenario, or the merged run.
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
    /// From the runtime's terminal status until the agent learned of it:
    /// the delay completion tracking adds to `observed_latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_delay: Option<LatencySummary>,
    /// Open loop: how late each start call began (actual minus intended
    /// start), the generator's own scheduling delay. Absent in closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lateness: Option<LatencySummary>,
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
            observation_delay: (h.observation.count() > 0).then(|| h.observation.summary()),
            start_lateness: (h.lateness.count() > 0).then(|| h.lateness.summary()),
        }
    }

    /// The latency a run is judged by: from the intended start in open loop,
    /// from the start call in closed loop. Every renderer, gate and
    /// comparison asks here.
    pub fn headline_latency(&self) -> &LatencySummary {
        self.intended_latency.as_ref().unwrap_or(&self.e2e_latency)
    }

    /// What [`Self::headline_latency`] measures, for people.
    pub fn headline_definition(&self) -> &'static str {
        if self.intended_latency.is_some() { "from the intended start" } else { "from the start call" }
    }
}

/// The histogram a run is judged by (the same choice as [`Section::headline_latency`]).
pub fn headline_histogram(h: &Histograms) -> &LatencyHistogram {
    if h.intended.count() > 0 { &h.intended } else { &h.e2e }
}

/// One agent's part of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    pub index: u32,
    pub address: String,
    pub hostname: String,
    /// Its slice of the cluster-wide concurrency budget (the in-flight cap in open loop).
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
    /// CPU seconds (user + system) the agent process used during the run.
    #[serde(default)]
    pub cpu_s: f64,
    /// Its wall clock against the coordinator's, read at its Hello (absent
    /// from an agent that does not send its time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockReading>,
}

/// An agent's wall clock against the coordinator's, from its Hello: its
/// reading against the middle of the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockReading {
    /// Agent minus coordinator, in milliseconds (positive: the agent is ahead).
    pub offset_ms: f64,
    /// Half the Hello's round trip: the offset is within this of the truth.
    pub within_ms: f64,
}

impl ClockReading {
    /// Offsets from this size on are named in the summary: duroxide-pg's
    /// leases compare the runtimes' clocks, and its lock timeouts are
    /// seconds (5 s for orchestrations by default).
    pub const NAMED_MS: f64 = 1000.0;
}

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
    /// Lost to the fault schedule (kill-agent, freeze-agent): as planned,
    /// so the run is not degraded by it.
    #[serde(default)]
    pub planned: bool,
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
    pub profile: Profile,
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
    /// True when the run started on a schedule (open loop), as its load
    /// resolves (a profile's stages decide open or closed).
    pub fn open_loop(&self) -> bool {
        self.profile.load().map_or(self.profile.rate.is_some(), |l| l.is_open())
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
        let combo = if self.profile.suite.is_empty() { String::new() } else { self.profile.dispatchers() };
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
            ("max_concurrent", a.max_concurrent.to_string(), b.max_concurrent.to_string()),
            ("duration", d(a.duration), d(b.duration)),
            ("workload", workload(&other.workload), workload(&self.workload)),
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

fn is_zero(n: &u32) -> bool {
    *n == 0
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
    fn the_headline_is_decided_in_one_place() {
        let mut h = Histograms::default();
        h.e2e.record_us(100);
        let closed = Section::new(Counts::default(), 1.0, &h);
        assert_eq!((closed.headline_latency().p99_us, closed.headline_definition()), (100, "from the start call"));
        h.intended.record_us(900);
        let open = Section::new(Counts::default(), 1.0, &h);
        assert_eq!(open.headline_latency().p99_us, headline_histogram(&h).quantile_us(0.99));
        assert_eq!(open.headline_definition(), "from the intended start");
    }
}
