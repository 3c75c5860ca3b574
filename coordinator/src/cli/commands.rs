//! The flags of the subcommands besides a run.

use std::path::PathBuf;
use std::time::Duration;

use super::duration;
use crate::model::sweep::SweepMode;

/// Settings of a capacity sweep.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The latency objective: the sweep stops after the first step whose p99
    /// (from the intended start in rate mode) exceeds it.
    #[arg(long, env = "LOADGEN_SLO_P99", value_parser = duration, value_name = "DURATION", required = true, help_heading = "Sweep")]
    pub slo_p99: Duration,

    /// What to raise: the open-loop rate or the closed-loop budget.
    #[arg(long, env = "LOADGEN_SWEEP_MODE", value_enum, default_value = "rate", help_heading = "Sweep")]
    pub mode: SweepMode,

    /// Explicit steps (rates like 10/s,20/s,40/s, or budgets like 5,10,20);
    /// default: geometric from --start by --factor.
    #[arg(long, env = "LOADGEN_SWEEP_STEPS", value_delimiter = ',', help_heading = "Sweep")]
    pub steps: Option<Vec<String>>,

    /// First step of the geometric series (a rate like 10/s, or a budget).
    #[arg(long, env = "LOADGEN_SWEEP_START", default_value = "10", help_heading = "Sweep")]
    pub start: String,

    /// Each step offers this many times the previous one.
    #[arg(long, env = "LOADGEN_SWEEP_FACTOR", default_value_t = 1.5, help_heading = "Sweep")]
    pub factor: f64,

    /// Most steps to run.
    #[arg(long, env = "LOADGEN_SWEEP_MAX_STEPS", default_value_t = 10, help_heading = "Sweep")]
    pub max_steps: u32,

    /// Load duration of each step (long enough to be steady).
    #[arg(long, env = "LOADGEN_STEP_DURATION", value_parser = duration, default_value = "20s", help_heading = "Sweep")]
    pub step_duration: Duration,

    /// Throughput has stopped growing when a step gains less than this many percent.
    #[arg(long, env = "LOADGEN_MIN_GAIN_PCT", default_value_t = 5.0, help_heading = "Sweep")]
    pub min_gain_pct: f64,
}

/// Settings of `coordinator bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Dispatcher settings to compare.
    #[arg(long, value_delimiter = ',', default_value = "1:1,2:2,4:4")]
    pub combos: Vec<String>,
    /// Runs per tool and setting (the table shows min / median / max).
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Load duration of each run.
    #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "10s")]
    pub duration: Duration,
    /// Orchestrations in flight (the standard workload's 20).
    #[arg(long, default_value_t = 20)]
    pub max_concurrent: u64,
    /// Activities per orchestration.
    #[arg(long, default_value_t = 5)]
    pub tasks: u32,
    /// Sleep of each activity.
    #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "10ms")]
    pub activity_delay: Duration,
    /// PostgreSQL URL (default: a throwaway cluster).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = loadgen_common::dburl::normalize)]
    pub database_url: Option<String>,
    /// Also write the comparison as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// This tool's completion-poll interval.
    #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "50ms")]
    pub completion_poll: Duration,
    /// Agent binary (default: `agent` next to this executable).
    #[arg(long, env = "LOADGEN_AGENT_BIN")]
    pub agent_bin: Option<PathBuf>,
    /// Gate: this tool's median throughput must be at least this many times
    /// the stress module's at every setting (e.g. 1.0).
    #[arg(long, value_name = "RATIO")]
    pub min_throughput_ratio: Option<f64>,
    /// Provider both tools run on: postgres (the system under test), or
    /// sqlite-memory, where the database is not the limit and the
    /// generator's own cost shows (then also the open-loop ceiling).
    #[arg(long, env = "LOADGEN_PROVIDER", default_value = "postgres")]
    pub provider: crate::plan::ProviderKind,
    /// On sqlite-memory: the load duration of each open-loop ceiling step
    /// (the highest rate one agent holds with under 1% late starts); 0
    /// skips the search.
    #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "5s")]
    pub ceiling_step: Duration,
}

/// Settings of `coordinator audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The schema to audit (e.g. loadgen_3f2a9c1d).
    #[arg(long)]
    pub schema: String,
    /// PostgreSQL URL of the database holding it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = loadgen_common::dburl::normalize)]
    pub database_url: String,
    /// Also write the audit as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Settings of `coordinator cleanup`.
#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// PostgreSQL URL of the database to look in.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = loadgen_common::dburl::normalize,
          required_unless_present = "servers")]
    pub database_url: Option<String>,
    /// Instead of schemas: the throwaway servers (--ha clusters, throwaway
    /// Postgres) a killed coordinator left on this machine; --yes stops and
    /// removes every one whose coordinator is gone.
    #[arg(long, conflicts_with_all = ["older_than", "run", "all", "force"])]
    pub servers: bool,
    /// Choose the schemas older than this (e.g. 1h, 2d is not a unit: use 48h).
    #[arg(long, value_parser = duration, value_name = "DURATION", conflicts_with_all = ["run", "all"])]
    pub older_than: Option<Duration>,
    /// Choose the schema of this run (its id, e.g. 3f2a9c1d); repeat or separate with commas.
    #[arg(long, value_delimiter = ',', conflicts_with = "all")]
    pub run: Vec<String>,
    /// Choose every loadgen_* schema.
    #[arg(long)]
    pub all: bool,
    /// Drop the chosen schemas, or remove the left servers (without it, only
    /// list what would be dropped).
    #[arg(long)]
    pub yes: bool,
    /// Drop chosen schemas even when their instances changed within the last
    /// minute (a run may still be using them).
    #[arg(long, requires = "yes")]
    pub force: bool,
    /// Also write the listing as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Settings of `coordinator ab`.
#[derive(Clone, Debug, clap::Args)]
pub struct AbArgs {
    /// The baseline build's agent binary (for example the release build).
    #[arg(long, value_name = "PATH", help_heading = "A/B", required_unless_present = "baseline_build")]
    pub baseline_agent: Option<PathBuf>,
    /// The candidate build's agent binary (for example one built against
    /// your duroxide-pg checkout; see docs/ab.md).
    #[arg(long, value_name = "PATH", help_heading = "A/B", required_unless_present = "candidate_build")]
    pub candidate_agent: Option<PathBuf>,
    /// The baseline as a duroxide-pg release (0.1.37) or checkout
    /// directory: its agent is built with scripts/build-agent.sh (cached
    /// under target/builds) before the runs.
    #[arg(long, value_name = "VERSION|DIR", help_heading = "A/B", conflicts_with = "baseline_agent")]
    pub baseline_build: Option<String>,
    /// The candidate as a duroxide-pg release or checkout directory, built
    /// the same way.
    #[arg(long, value_name = "VERSION|DIR", help_heading = "A/B", conflicts_with = "candidate_agent")]
    pub candidate_build: Option<String>,
    /// Runs per build, alternating in pairs (B C, C B, ...); 3 at least
    /// for a verdict that needs every candidate run on one side. The profile
    /// (--profile) defaults to standard here.
    #[arg(long, env = "LOADGEN_AB_REPEAT", default_value_t = 3, help_heading = "A/B")]
    pub repeat: u32,
    /// Smallest change called faster or slower, in percent of the
    /// baseline's median (smaller ones read "no significant difference").
    #[arg(long, env = "LOADGEN_AB_MIN_EFFECT_PCT", default_value_t = 5.0, help_heading = "A/B")]
    pub min_effect_pct: f64,
    /// Extra environment for the baseline's agents (KEY=VALUE; repeat).
    #[arg(long, value_name = "KEY=VALUE", value_parser = super::assignment, help_heading = "A/B")]
    pub baseline_env: Vec<(String, String)>,
    /// Extra environment for the candidate's agents (KEY=VALUE; repeat), for
    /// comparing settings of one build (e.g. DUROXIDE_PG_POOL_MAX=20).
    #[arg(long, value_name = "KEY=VALUE", value_parser = super::assignment, help_heading = "A/B")]
    pub candidate_env: Vec<(String, String)>,
    /// Exit 1 when the candidate is slower in throughput or p99.
    #[arg(long, help_heading = "A/B")]
    pub fail_on_slower: bool,
}

/// Settings of `coordinator compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The providers to run the workload on, in the first repetition's order
    /// (it rotates each repetition).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite-memory,postgres", help_heading = "Compare")]
    pub providers: Vec<crate::plan::ProviderKind>,
    /// Runs per provider and dispatcher combination (the table shows min / median / max).
    #[arg(long, env = "LOADGEN_COMPARE_REPEAT", default_value_t = 3, help_heading = "Compare")]
    pub repeat: u32,
}

/// What `coordinator hunt` adds to a run's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct HuntArgs {
    /// Start no try that would likely end after this much time (each try
    /// takes about as long as the longest so far).
    #[arg(long, env = "LOADGEN_HUNT_BUDGET", value_parser = duration, default_value = "10m", help_heading = "Hunt")]
    pub budget: Duration,

    /// At most this many tries.
    #[arg(long, env = "LOADGEN_HUNT_TRIES", value_name = "N", help_heading = "Hunt")]
    pub tries: Option<u32>,

    /// Keep trying after an invariant broke, until the budget (or --tries)
    /// ends: the detection rate over every try.
    #[arg(long, env = "LOADGEN_HUNT_WHOLE_BUDGET", help_heading = "Hunt")]
    pub whole_budget: bool,
}

/// What `coordinator matrix` adds to a run's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MatrixArgs {
    /// The SQLSTATEs (or condition names), a row each: the server answers
    /// the procedures' calls with a genuine error of that code ("none": no
    /// such rows).
    #[arg(long, value_delimiter = ',', default_value = crate::matrix::plan::DEFAULT_CODES, help_heading = "Matrix")]
    pub codes: Vec<String>,

    /// The provider's stored procedures the codes hit, a row per code and
    /// procedure; "connect" hits new database connections instead (through
    /// the agents' relays).
    #[arg(long, value_delimiter = ',', default_value = "ack_orchestration_item", help_heading = "Matrix")]
    pub procedures: Vec<String>,

    /// A code answers every N-th call of the procedure while its fault lasts.
    #[arg(long, value_name = "N", default_value_t = 5, help_heading = "Matrix")]
    pub every: u64,

    /// The timing faults, a row each ("none": no such rows). Default:
    /// terminate-backends, cancel-queries, stall-writes, and on the
    /// throwaway Postgres pause-db and restart-db.
    #[arg(long, value_delimiter = ',', help_heading = "Matrix")]
    pub timing: Option<Vec<String>>,

    /// When each row's fault starts, after the run's start.
    #[arg(long, value_parser = duration, default_value = "3s", help_heading = "Matrix")]
    pub fault_at: Duration,

    /// How long each row's fault lasts (restart-db: the downtime).
    #[arg(long, value_parser = duration, default_value = "4s", help_heading = "Matrix")]
    pub fault_for: Duration,

    /// Builds of the agent, a column each: duroxide-pg releases or
    /// checkouts, built as --build builds them (default: this tool's own).
    #[arg(long, value_delimiter = ',', help_heading = "Matrix")]
    pub builds: Vec<String>,

    /// The verdicts known (a TOML file: "FAULT" = "VERDICT", and a
    /// ["BUILD"] table for one build's own): a listed fault's cell passes
    /// when its verdict is the one named, any other cell when it is tolerated.
    #[arg(long, value_name = "FILE", help_heading = "Matrix")]
    pub expect: Option<std::path::PathBuf>,
}
