//! The flags of a run (also of each sweep step and bench run). Every setting
//! a deployment would pin reads an environment variable too, so a Kubernetes
//! ConfigMap can set it without patching arguments.

use std::path::PathBuf;
use std::time::Duration;

use super::{assignment, duration, rate};
use crate::plan::{Arrival, CompletionSource, LiveMode, OnAgentLoss, ProviderKind};

/// Settings of a run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agents to drive, as host:port[,host:port...]. A name that resolves to
    /// several addresses (a Kubernetes headless Service) stands for one agent
    /// at each of them.
    #[arg(long, env = "LOADGEN_AGENTS", value_delimiter = ',', conflicts_with = "local", help_heading = "Agents")]
    pub agents: Vec<String>,

    /// Wait until N distinct agents answer (names in --agents are resolved
    /// again every second), printing progress; fail after --agents-timeout.
    #[arg(long, env = "LOADGEN_EXPECT_AGENTS", value_name = "N", requires = "agents", help_heading = "Agents")]
    pub expect_agents: Option<u32>,

    /// How long --expect-agents waits for its agents.
    #[arg(long, env = "LOADGEN_AGENTS_TIMEOUT", value_name = "DURATION", value_parser = duration, default_value = "2m", help_heading = "Agents")]
    pub agents_timeout: Duration,

    /// Shared agent token, at least 16 characters (required with --agents;
    /// --local makes a fresh one).
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true, help_heading = "Agents")]
    pub token: Option<String>,

    /// PEM CA certificate that signed the agents' TLS certificates: talk TLS to --agents.
    #[arg(long, env = "LOADGEN_TLS_CA", value_name = "FILE", help_heading = "Agents")]
    pub tls_ca: Option<PathBuf>,

    /// Name to verify in the agents' certificates (default: the host of each address).
    #[arg(long, env = "LOADGEN_TLS_DOMAIN", requires = "tls_ca", help_heading = "Agents")]
    pub tls_domain: Option<String>,

    /// Spawn N agent processes on loopback (free ports) and stop them at the end.
    #[arg(long, env = "LOADGEN_LOCAL", value_name = "N", help_heading = "Agents")]
    pub local: Option<u32>,

    /// Agent binary for --local (default: `agent` next to this executable).
    #[arg(long, env = "LOADGEN_AGENT_BIN", help_heading = "Agents")]
    pub agent_bin: Option<PathBuf>,

    /// The duroxide-pg build the agents run: a release (0.1.37) or a
    /// duroxide-pg checkout's directory. With --local the agent is built
    /// against it (scripts/build-agent.sh: minutes the first time, cached
    /// after); with --agents each agent must report that release. Either
    /// way the agents' build migrates each run's schema, not this
    /// coordinator's.
    #[arg(
        long,
        env = "LOADGEN_BUILD",
        value_name = "VERSION|DIR",
        conflicts_with = "agent_bin",
        help_heading = "Agents"
    )]
    pub build: Option<String>,

    /// What to do when an agent is lost mid-run (its stream breaks, or it is
    /// silent for 5 s): continue with the others, or stop them too. Either way
    /// the run is reported as degraded (exit code 4).
    #[arg(long, value_enum, env = "LOADGEN_ON_AGENT_LOSS", default_value = "continue", help_heading = "Agents")]
    pub on_agent_loss: OnAgentLoss,

    /// Run against a throwaway high-availability Postgres on loopback, as
    /// production runs it: one etcd, two Postgres nodes under Patroni and
    /// HAProxy routing the write endpoint to the leader (Debian's patroni,
    /// etcd-server and haproxy packages). The switchover and failover faults
    /// act on it. Removed at exit.
    #[arg(long, env = "LOADGEN_HA", conflicts_with = "database_url", help_heading = "Database")]
    pub ha: bool,

    /// Replication between the HA cluster's nodes: sync (a commit waits for
    /// the standby; nothing acknowledged is lost in a failover) or async
    /// (commits do not wait: a failover can lose what the old leader
    /// acknowledged, which the audit names instance by instance).
    #[arg(
        long,
        env = "LOADGEN_REPLICATION",
        value_enum,
        default_value = "sync",
        requires = "ha",
        help_heading = "Database"
    )]
    pub replication: crate::plan::Replication,

    /// Named load profile (see `coordinator profiles`); default light, or the
    /// only profile of --profile-file.
    #[arg(long, env = "LOADGEN_PROFILE", help_heading = "Workload")]
    pub profile: Option<String>,

    /// TOML file with `[[profile]]` tables that add to (or replace) the built-in ones.
    #[arg(long, env = "LOADGEN_PROFILE_FILE", value_name = "FILE", help_heading = "Workload")]
    pub profile_file: Option<PathBuf>,

    /// The scenario to drive (see `coordinator scenarios`); default the profile's.
    #[arg(long, env = "LOADGEN_SCENARIO", help_heading = "Workload")]
    pub scenario: Option<String>,

    /// Set a scenario option, e.g. --set tasks=8 --set activity_delay=5ms
    /// (repeat for several; a mix takes weights=fanout:3,timers:1 and
    /// scenario.key=value for its parts).
    #[arg(long = "set", env = "LOADGEN_SET", value_name = "KEY=VALUE", value_parser = assignment, value_delimiter = ';', help_heading = "Workload")]
    pub set: Vec<(String, String)>,

    /// Seed of every per-instance choice (which instances fail, a mix's
    /// picks, payload bytes): the same seed gives the same instances
    /// [default: drawn from the run id].
    #[arg(long, env = "LOADGEN_SEED", help_heading = "Workload")]
    pub seed: Option<u64>,

    /// fanout's activities per orchestration (the same as --set tasks=N).
    #[arg(long, env = "LOADGEN_TASKS", help_heading = "Workload")]
    pub tasks: Option<u32>,

    /// fanout's activity sleep (the same as --set activity_delay=D).
    #[arg(long, env = "LOADGEN_ACTIVITY_DELAY", value_parser = duration, allow_hyphen_values = true, help_heading = "Workload")]
    pub activity_delay: Option<Duration>,

    /// How long new orchestrations are started (e.g. 30s, 2m).
    #[arg(long, env = "LOADGEN_DURATION", value_parser = duration, allow_hyphen_values = true, help_heading = "Load")]
    pub duration: Option<Duration>,

    /// Orchestrations kept in flight cluster-wide (closed loop).
    #[arg(long, env = "LOADGEN_MAX_CONCURRENT", help_heading = "Load")]
    pub max_concurrent: Option<u64>,

    /// Open loop: start this many orchestrations per second cluster-wide
    /// (e.g. 200/s, 12000/min), split over the agents like the budget, with
    /// latency measured from each start's intended time. Without it the run
    /// is closed loop (keeps --max-concurrent in flight).
    #[arg(long, env = "LOADGEN_RATE", value_parser = rate, value_name = "N/s", allow_hyphen_values = true, help_heading = "Load")]
    pub rate: Option<f64>,

    /// Load that changes over time, cluster-wide. Rates make an open loop
    /// (`30s:10/s,1m:100/s,30s:0/s` ramps linearly to each target over the
    /// stage, from 0; a leading bare target sets the start, `10/s,30s:10/s`
    /// holds 10/s; a `0s:` stage jumps); plain numbers are in-flight targets
    /// of a closed loop (`30s:5,1m:50`); one plan never mixes the two.
    /// Explicit stages set the duration. Shapes span --duration: `ramp:50/s`, `spike:5/s..50/s` (the peak for
    /// the middle fifth), `ebb-and-flow:5/s..50/s@1m` (a sine of that period).
    #[arg(long, env = "LOADGEN_STAGES", value_name = "STAGES", allow_hyphen_values = true, conflicts_with_all = ["rate", "max_concurrent"], help_heading = "Load")]
    pub stages: Option<String>,

    /// Faults to inject during the run, a TOML file of `[[fault]]` tables
    /// (kind, at, duration and the kind's fields). Replaces the profile's
    /// faults. `--help` lists the kinds; see docs/faults.md.
    #[arg(long, env = "LOADGEN_FAULTS", value_name = "FILE", help_heading = "Load", long_help = faults_help())]
    pub faults: Option<std::path::PathBuf>,

    /// Open loop: spacing of starts [profile: constant].
    #[arg(long, env = "LOADGEN_ARRIVAL", value_enum, help_heading = "Load")]
    pub arrival: Option<Arrival>,

    /// Open loop: cap on orchestrations in flight cluster-wide; starts due
    /// while it is reached are dropped and counted [default: a minute of
    /// arrivals, at least 100].
    #[arg(long, env = "LOADGEN_MAX_IN_FLIGHT", value_name = "N", help_heading = "Load")]
    pub max_in_flight: Option<u64>,

    /// Stop starting after this many orchestrations cluster-wide (split over
    /// the agents); the run ends when they are done (--duration still bounds it).
    #[arg(long, env = "LOADGEN_ITERATIONS", value_name = "N", help_heading = "Load")]
    pub iterations: Option<u64>,

    /// Orchestration dispatcher slots per runtime.
    #[arg(long, env = "LOADGEN_ORCH_CONCURRENCY", help_heading = "Runtimes")]
    pub orch_concurrency: Option<u32>,

    /// Worker (activity) dispatcher slots per runtime.
    #[arg(long, env = "LOADGEN_WORKER_CONCURRENCY", help_heading = "Runtimes")]
    pub worker_concurrency: Option<u32>,

    /// Run once per dispatcher combination, each on a fresh schema (e.g. 1:1,2:2,4:4).
    #[arg(long, env = "LOADGEN_SUITE", value_delimiter = ',', help_heading = "Runtimes")]
    pub suite: Option<Vec<String>>,

    /// duroxide runtimes per agent process [profiles: 1].
    #[arg(long, env = "LOADGEN_RUNTIMES_PER_AGENT", help_heading = "Runtimes")]
    pub runtimes_per_agent: Option<u32>,

    /// Connection-pool size of each provider in every agent process
    /// (DUROXIDE_PG_POOL_MAX). Local agents get it at spawn; remote agents
    /// must already run with it (agent --pool-max).
    #[arg(long, env = "LOADGEN_POOL_MAX", help_heading = "Runtimes")]
    pub pool_max: Option<u32>,

    /// Idle poll interval of each dispatcher, the provider's latency floor [profiles: 100ms].
    #[arg(long, env = "LOADGEN_POLL_INTERVAL", value_parser = duration, allow_hyphen_values = true, help_heading = "Runtimes")]
    pub poll_interval: Option<Duration>,

    /// How long in-flight orchestrations may take to finish after the deadline [profiles: 60s].
    #[arg(long, env = "LOADGEN_DRAIN_TIMEOUT", visible_alias = "wait-timeout", value_parser = duration, allow_hyphen_values = true, help_heading = "Runtimes")]
    pub drain_timeout: Option<Duration>,

    /// duroxide's orchestrator lock timeout [duroxide: 5s].
    #[arg(long, env = "LOADGEN_ORCHESTRATOR_LOCK_TIMEOUT", value_parser = duration, allow_hyphen_values = true, help_heading = "Runtimes")]
    pub orchestrator_lock_timeout: Option<Duration>,

    /// duroxide's worker (activity) lock timeout [duroxide: 30s].
    #[arg(long, env = "LOADGEN_WORKER_LOCK_TIMEOUT", value_parser = duration, allow_hyphen_values = true, help_heading = "Runtimes")]
    pub worker_lock_timeout: Option<Duration>,

    /// Artificial one-way delay between each agent's runtimes and Postgres
    /// (a relay on the agent; 0 turns it off).
    #[arg(long, env = "LOADGEN_DB_LATENCY", value_parser = duration, allow_hyphen_values = true, help_heading = "Runtimes")]
    pub db_latency: Option<Duration>,

    /// Which duroxide provider the runtimes use: `postgres` (duroxide-pg,
    /// the system under test), or duroxide's SQLite provider as the
    /// single-process reference, `sqlite-memory` or `sqlite-file` (one local
    /// agent; use --runtimes-per-agent for several runtimes sharing it).
    #[arg(long, value_enum, env = "LOADGEN_PROVIDER", default_value = "postgres", help_heading = "Runtimes")]
    pub provider: ProviderKind,

    /// Who learns completions: `cluster` (the coordinator makes one batched
    /// query per tick for every agent's instances, so the generator's own
    /// query rate does not grow with the number of agents) or `agent` (each
    /// agent queries for its own every tick). Formerly --completion-tracking
    /// (LOADGEN_COMPLETION_TRACKING), still accepted for one release.
    #[arg(
        long,
        value_enum,
        env = "LOADGEN_COMPLETION_SOURCE",
        default_value = "cluster",
        help_heading = "Runtimes",
        alias = "completion-tracking"
    )]
    pub completion_source: CompletionSource,

    /// Interval of the batched completion query, made only while something is
    /// in flight. It sets the generator's own query rate (10/s at 100ms) and
    /// how late a completion is *seen*; latency itself comes from the
    /// runtime's completion time.
    #[arg(long, env = "LOADGEN_COMPLETION_POLL", value_parser = duration, allow_hyphen_values = true, default_value = "100ms", help_heading = "Runtimes")]
    pub completion_poll: Duration,

    /// Gate: merged orchestrations per second at least this.
    #[arg(long, env = "LOADGEN_MIN_ORCH_PER_SEC", help_heading = "Gates")]
    pub min_orch_per_sec: Option<f64>,

    /// Gate: merged headline p99 at most this many milliseconds.
    #[arg(long, env = "LOADGEN_P99_MS", help_heading = "Gates")]
    pub p99_ms: Option<f64>,

    /// Gate: at most this many orchestrations may fail unexpectedly or stay unfinished (default 0).
    #[arg(long, env = "LOADGEN_MAX_FAILED", help_heading = "Gates")]
    pub max_failed: Option<u64>,

    /// Judge the gates that can already be lost while the run goes (failures
    /// beyond --max-failed, infrastructure/configuration/poison failures,
    /// start errors, the p99 of the last 10 s above --p99-ms, a lost agent)
    /// and, when one is, stop every agent at once and exit 1 naming the gate
    /// and when it was lost. The result is still written in full, marked
    /// aborted. In a profile: abort_on_fail = true.
    #[arg(long, env = "LOADGEN_ABORT_ON_FAIL", help_heading = "Gates")]
    pub abort_on_fail: bool,

    /// Gate: every agent's clock within this of the coordinator's (e.g. 1s),
    /// read at its Hello; the summary names any agent a second or more off.
    #[arg(long, env = "LOADGEN_MAX_CLOCK_OFFSET", value_name = "DURATION", value_parser = duration, allow_hyphen_values = true, help_heading = "Gates")]
    pub max_clock_offset: Option<Duration>,

    /// Warn when an agent's memory grows faster than this (MB per minute).
    #[arg(long, env = "LOADGEN_RSS_GROWTH_MB_PER_MIN", help_heading = "Gates")]
    pub rss_growth_mb_per_min: Option<f64>,

    /// PostgreSQL URL (postgres://user:pass@host:port/db, or libpq's
    /// key=value form). Without it a throwaway Postgres is started from the
    /// installed server binaries and removed at exit (--local only).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = loadgen_common::dburl::normalize)]
    pub database_url: Option<String>,

    /// Keep the run's schema instead of dropping it (for inspection).
    #[arg(long, env = "LOADGEN_KEEP_SCHEMA")]
    pub keep_schema: bool,

    /// Write the full result as JSON to this file; "-" writes it to stdout
    /// (the text summary then goes to stderr). Repeat (or separate with
    /// commas) for several, e.g. --json -,/results/run.json in a container.
    #[arg(
        long,
        env = "LOADGEN_JSON",
        value_name = "FILE",
        value_delimiter = ',',
        allow_hyphen_values = true,
        help_heading = "Results"
    )]
    pub json: Vec<PathBuf>,

    /// Write a self-contained HTML report (configuration, summary, charts of
    /// throughput, latency and the database over time) to this file.
    #[arg(long, env = "LOADGEN_REPORT", value_name = "FILE.html", help_heading = "Results")]
    pub report: Option<PathBuf>,

    /// Write the result with any renderer, as FORMAT=FILE (FILE "-" is
    /// stdout); formats: json, html, markdown, text, junit. Repeat for several.
    #[arg(long, env = "LOADGEN_OUTPUT", value_name = "FORMAT=FILE", value_parser = assignment, value_delimiter = ';', help_heading = "Results")]
    pub output: Vec<(String, String)>,

    /// Write HdrHistogram interval logs (.hlog, one per agent and merged,
    /// one interval a second) into this directory.
    #[arg(long, env = "LOADGEN_HLOG_DIR", value_name = "DIR", help_heading = "Results")]
    pub hlog_dir: Option<PathBuf>,

    /// Progress while running: a table per agent redrawn in place (table),
    /// one line a second (line), or table on a terminal and line otherwise (auto).
    #[arg(long, env = "LOADGEN_LIVE", value_enum, default_value = "auto", help_heading = "Results")]
    pub live: LiveMode,

    /// Serve the run's live figures for Prometheus at http://ADDR/metrics
    /// (OpenMetrics text): orchestrations by scenario and failure category,
    /// in flight against offered, the merged latency histogram and its exact
    /// p50/p99/p999, database commits, deadlocks and lock waits, agents,
    /// active faults. ADDR is host:port (port 0: any free one, printed) or
    /// :port for every interface. A port already taken is refused before
    /// anything starts. Scrape config and dashboard: deploy/grafana/.
    #[arg(long, env = "LOADGEN_METRICS_LISTEN", value_name = "ADDR", help_heading = "Results")]
    pub metrics_listen: Option<String>,

    /// Keep --metrics-listen serving this long after the result is written,
    /// so a scrape after the end sees the final totals (they equal the JSON).
    #[arg(long, env = "LOADGEN_LINGER", value_name = "DURATION", value_parser = duration, default_value = "0s", requires = "metrics_listen", help_heading = "Results")]
    pub linger: Duration,

    /// Append the run to the per-database-host results file and history under
    /// --results-dir, after comparing it with the previous comparable run.
    #[arg(long, env = "LOADGEN_TRACK", help_heading = "Results")]
    pub track: bool,

    /// Like --track, marking the database as remote/cloud (its own results file).
    #[arg(long, env = "LOADGEN_TRACK_CLOUD", help_heading = "Results")]
    pub track_cloud: bool,

    /// Where tracked results live.
    #[arg(long, env = "LOADGEN_RESULTS_DIR", default_value = "results", help_heading = "Results")]
    pub results_dir: PathBuf,

    /// Compare against this JSON result (from --json) instead of the previous tracked run.
    #[arg(long, env = "LOADGEN_BASELINE", value_name = "FILE", help_heading = "Results")]
    pub baseline: Option<PathBuf>,

    /// Fail (exit 1) on a regression (throughput -20%, p99 +50%) or excessive memory growth.
    #[arg(long, env = "LOADGEN_FAIL_ON_REGRESSION", help_heading = "Results")]
    pub fail_on_regression: bool,

    /// Log filter (tracing EnvFilter syntax) for the coordinator, and for
    /// local agents. duroxide's own warnings (every failure a scenario
    /// designs, every retried deadlock) are counted in the summary rather
    /// than logged; add e.g. ",duroxide=warn,duroxide_pg=warn" to see them.
    #[arg(long, env = "LOADGEN_LOG", default_value = "warn,sqlx=error,duroxide=error,duroxide_pg=error")]
    pub log: String,
}

/// `--faults` in `--help`: the kinds and their fields, from the registry.
fn faults_help() -> String {
    format!(
        "Faults to inject during the run, a TOML file of `[[fault]]` tables: kind, at (after the common start), \
         duration where the kind lasts, and the kind's fields. Replaces the profile's faults. See docs/faults.md. Kinds:\n{}",
        crate::faults::help_text().lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
    )
}
