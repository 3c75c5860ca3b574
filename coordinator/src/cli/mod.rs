//! Command-line interface of the coordinator (clap derive). Every setting a
//! deployment would pin has an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen_common::config::{self, ConfigError, Overrides};

/// How progress is shown during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LiveMode {
    Auto,
    Table,
    Line,
}

impl Args {
    /// Whether the live view is the table (a terminal, or asked for).
    pub fn live_table(&self) -> bool {
        use std::io::IsTerminal;
        match self.live {
            LiveMode::Table => true,
            LiveMode::Line => false,
            LiveMode::Auto => std::io::stderr().is_terminal(),
        }
    }
}

fn rate(text: &str) -> Result<f64, String> {
    config::parse_rate(text).map_err(|e| e.to_string())
}

fn arrival(text: &str) -> Result<loadgen_common::config::Arrival, String> {
    text.parse()
}

fn duration(text: &str) -> Result<Duration, String> {
    config::parse_duration(text).map_err(|e: ConfigError| e.to_string())
}

/// Coordinator of the duroxide-pg load generator.
///
/// Splits a cluster-wide budget of in-flight orchestrations over agents,
/// starts them at one instant, shows live progress, merges their HDR latency
/// histograms exactly and checks the result against must-pass gates.
///
/// Examples:
///   coordinator --local 3 --profile light                 # throwaway Postgres, 3 local agents
///   coordinator --local 2 --profile suite --json out.json # 1:1, 2:2, 4:4 compared
///   coordinator profiles                                  # the profiles and their gates
///   coordinator audit --schema loadgen_3f2a9c1d          # audit a kept schema
///   DATABASE_URL=postgres://u:p@db/x LOADGEN_TOKEN=... coordinator --agents a:7000,b:7000 --profile production --track
///
/// Exit codes: 0 gates passed, 1 a gate failed (or a regression with
/// --fail-on-regression), 2 bad input, 3 the run could not be carried out
/// (database or agent trouble), 4 degraded (an agent was lost), 130 interrupted.
#[derive(Debug, Parser)]
#[command(
    name = "coordinator",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: Args,
}

/// What a sweep raises step by step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SweepMode {
    /// Open-loop arrival rate (orchestrations per second), latency from the
    /// intended start: the honest way to find a latency SLO's limit.
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
}

/// Settings of a capacity sweep.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The latency objective: the sweep stops after the first step whose p99
    /// (from the intended start in rate mode) exceeds it.
    #[arg(long, value_parser = duration, value_name = "DURATION", required = true, help_heading = "Sweep")]
    pub slo_p99: Duration,

    /// What to raise: the open-loop rate or the closed-loop budget.
    #[arg(long, value_enum, default_value = "rate", help_heading = "Sweep")]
    pub mode: SweepMode,

    /// Explicit steps (rates like 10/s,20/s,40/s, or budgets like 5,10,20);
    /// default: geometric from --start by --factor.
    #[arg(long, value_delimiter = ',', help_heading = "Sweep")]
    pub steps: Option<Vec<String>>,

    /// First step of the geometric series (a rate like 10/s, or a budget).
    #[arg(long, default_value = "10", help_heading = "Sweep")]
    pub start: String,

    /// Each step offers this many times the previous one.
    #[arg(long, default_value_t = 1.5, help_heading = "Sweep")]
    pub factor: f64,

    /// Most steps to run.
    #[arg(long, default_value_t = 10, help_heading = "Sweep")]
    pub max_steps: u32,

    /// Load duration of each step (long enough to be steady).
    #[arg(long, value_parser = duration, default_value = "20s", help_heading = "Sweep")]
    pub step_duration: Duration,

    /// Throughput has stopped growing when a step gains less than this many percent.
    #[arg(long, default_value_t = 5.0, help_heading = "Sweep")]
    pub min_gain_pct: f64,
}

impl SweepArgs {
    /// The offered load of each step, checked.
    pub fn offered_steps(&self) -> Result<Vec<f64>, crate::CoordinatorError> {
        let usage = crate::CoordinatorError::Usage;
        let parse = |t: &str| -> Result<f64, crate::CoordinatorError> {
            match self.mode {
                SweepMode::Rate => config::parse_rate(t).map_err(|e| usage(e.to_string())),
                SweepMode::Budget => match t.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n as f64),
                    _ => Err(usage(format!("budget step {t:?}: expected a whole number of orchestrations in flight"))),
                },
            }
        };
        let steps = match &self.steps {
            Some(list) => list.iter().map(|t| parse(t)).collect::<Result<Vec<_>, _>>()?,
            None => {
                if !(self.factor.is_finite() && self.factor > 1.0) {
                    return Err(usage(format!("--factor {} must be greater than 1", self.factor)));
                }
                if self.max_steps == 0 || self.max_steps > 50 {
                    return Err(usage("--max-steps must be 1..50".into()));
                }
                let mut s = crate::sweep::geometric(parse(&self.start)?, self.factor, self.max_steps);
                if self.mode == SweepMode::Budget {
                    s = s.into_iter().map(f64::round).collect();
                    s.dedup();
                }
                s
            }
        };
        if steps.is_empty() {
            return Err(usage("--steps is empty".into()));
        }
        if steps.windows(2).any(|w| w[1] <= w[0]) {
            return Err(usage("sweep steps must increase".into()));
        }
        if self.slo_p99.is_zero() {
            return Err(usage("--slo-p99 must be positive".into()));
        }
        Ok(steps)
    }
}

/// Subcommands besides the default (a run).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find the capacity at a latency objective: raise the open-loop rate (or
    /// the budget) step by step until p99 breaks the SLO or throughput stops
    /// growing; report the knee, Little's law and a recommendation.
    ///
    /// Example: coordinator sweep --local 2 --slo-p99 500ms --steps 10/s,20/s,40/s,80/s --report sweep.html
    Sweep {
        #[command(flatten)]
        sweep: SweepArgs,
        #[command(flatten)]
        run: Box<Args>,
    },
    /// List the profiles (built-in and from --profile-file) with their values and gates.
    Profiles {
        /// Also list the profiles of this TOML file.
        #[arg(long, env = "LOADGEN_PROFILE_FILE")]
        profile_file: Option<PathBuf>,
    },
    /// Run duroxide's own stress module and this tool (one local agent) side by
    /// side on one database, per dispatcher setting, and compare throughput and
    /// commits per orchestration.
    Bench {
        /// Dispatcher settings to compare.
        #[arg(long, value_delimiter = ',', default_value = "1:1,2:2,4:4")]
        combos: Vec<String>,
        /// Runs per tool and setting (the table shows min / median / max).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Load duration of each run.
        #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "10s")]
        duration: Duration,
        /// Orchestrations in flight (the standard workload's 20).
        #[arg(long, default_value_t = 20)]
        max_concurrent: u64,
        /// Activities per orchestration.
        #[arg(long, default_value_t = 5)]
        tasks: u32,
        /// Sleep of each activity.
        #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "10ms")]
        activity_delay: Duration,
        /// PostgreSQL URL (default: a throwaway cluster).
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Also write the comparison as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// This tool's completion-poll interval.
        #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "50ms")]
        completion_poll: Duration,
        /// Agent binary (default: `agent` next to this executable).
        #[arg(long, env = "LOADGEN_AGENT_BIN")]
        agent_bin: Option<PathBuf>,
    },
    /// Audit a kept schema (from --keep-schema): every instance terminal exactly
    /// once, the right outputs, nothing queued, every activity in the history.
    /// Exit 0 when it passes, 1 when it does not.
    Audit {
        /// The schema to audit (e.g. loadgen_3f2a9c1d).
        #[arg(long)]
        schema: String,
        /// PostgreSQL URL of the database holding it.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// Also write the audit as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
}

/// Settings of a run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agents to drive, as host:port[,host:port...]. A name that resolves to
    /// several addresses (a Kubernetes headless Service) stands for one agent
    /// at each of them.
    #[arg(long, env = "LOADGEN_AGENTS", value_delimiter = ',', conflicts_with = "local")]
    pub agents: Vec<String>,

    /// Wait until N distinct agents answer (names in --agents are resolved
    /// again every second), printing progress; fail after --agents-timeout.
    #[arg(long, env = "LOADGEN_EXPECT_AGENTS", value_name = "N", requires = "agents")]
    pub expect_agents: Option<u32>,

    /// How long --expect-agents waits for its agents.
    #[arg(long, env = "LOADGEN_AGENTS_TIMEOUT", value_name = "DURATION", value_parser = duration, default_value = "2m")]
    pub agents_timeout: Duration,

    /// Shared agent token (required with --agents; --local makes a fresh one).
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// PEM CA certificate that signed the agents' TLS certificates: talk TLS to --agents.
    #[arg(long, env = "LOADGEN_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Name to verify in the agents' certificates (default: the host of each address).
    #[arg(long, env = "LOADGEN_TLS_DOMAIN", requires = "tls_ca")]
    pub tls_domain: Option<String>,

    /// Spawn N agent processes on loopback (free ports) and stop them at the end.
    #[arg(long, value_name = "N")]
    pub local: Option<u32>,

    /// Named load profile (see `coordinator profiles`); default light, or the
    /// only profile of --profile-file.
    #[arg(long, env = "LOADGEN_PROFILE")]
    pub profile: Option<String>,

    /// TOML file with `[[profile]]` tables that add to (or replace) the built-in ones.
    #[arg(long, env = "LOADGEN_PROFILE_FILE", value_name = "FILE")]
    pub profile_file: Option<PathBuf>,

    /// How long new orchestrations are started (e.g. 30s, 2m).
    #[arg(long, value_parser = duration, allow_hyphen_values = true, help_heading = "Profile overrides")]
    pub duration: Option<Duration>,

    /// Orchestrations kept in flight cluster-wide.
    #[arg(long, help_heading = "Profile overrides")]
    pub max_concurrent: Option<u64>,

    /// Activities each orchestration fans out to.
    #[arg(long, help_heading = "Profile overrides")]
    pub tasks: Option<u32>,

    /// How long each activity sleeps (e.g. 10ms).
    #[arg(long, value_parser = duration, allow_hyphen_values = true, help_heading = "Profile overrides")]
    pub activity_delay: Option<Duration>,

    /// Orchestration dispatcher slots per runtime.
    #[arg(long, help_heading = "Profile overrides")]
    pub orch_concurrency: Option<u32>,

    /// Worker (activity) dispatcher slots per runtime.
    #[arg(long, help_heading = "Profile overrides")]
    pub worker_concurrency: Option<u32>,

    /// duroxide runtimes per agent process [profiles: 1].
    #[arg(long, help_heading = "Profile overrides")]
    pub runtimes_per_agent: Option<u32>,

    /// Connection-pool size of each provider in every agent process
    /// (DUROXIDE_PG_POOL_MAX). Local agents get it at spawn; remote agents
    /// must already run with it (agent --pool-max).
    #[arg(long, help_heading = "Profile overrides")]
    pub pool_max: Option<u32>,

    /// Idle poll interval of each dispatcher, the provider's latency floor [profiles: 100ms].
    #[arg(long, value_parser = duration, allow_hyphen_values = true, help_heading = "Profile overrides")]
    pub poll_interval: Option<Duration>,

    /// How long in-flight orchestrations may take to finish after the deadline [profiles: 60s].
    #[arg(long, visible_alias = "wait-timeout", value_parser = duration, allow_hyphen_values = true, help_heading = "Profile overrides")]
    pub drain_timeout: Option<Duration>,

    /// duroxide's orchestrator lock timeout [duroxide: 5s].
    #[arg(long, value_parser = duration, allow_hyphen_values = true, help_heading = "Profile overrides")]
    pub orchestrator_lock_timeout: Option<Duration>,

    /// duroxide's worker (activity) lock timeout [duroxide: 30s].
    #[arg(long, value_parser = duration, allow_hyphen_values = true, help_heading = "Profile overrides")]
    pub worker_lock_timeout: Option<Duration>,

    /// Artificial one-way delay between each agent's runtimes and Postgres
    /// (a relay on the agent; 0 turns it off).
    #[arg(long, value_parser = duration, allow_hyphen_values = true, help_heading = "Profile overrides")]
    pub db_latency: Option<Duration>,

    /// Run once per dispatcher combination, each on a fresh schema (e.g. 1:1,2:2,4:4).
    #[arg(long, value_delimiter = ',', help_heading = "Profile overrides")]
    pub suite: Option<Vec<String>>,

    /// Open loop: start this many orchestrations per second cluster-wide
    /// (e.g. 200/s, 12000/min), split over the agents like the budget, with
    /// latency measured from each start's intended time. Without it the run
    /// is closed loop (keeps --max-concurrent in flight).
    #[arg(long, value_parser = rate, value_name = "N/s", allow_hyphen_values = true, help_heading = "Open loop")]
    pub rate: Option<f64>,

    /// Open loop: spacing of starts, constant (every 1/rate) or poisson
    /// (independent arrivals) [profile: constant].
    #[arg(long, value_parser = arrival, help_heading = "Open loop")]
    pub arrival: Option<loadgen_common::config::Arrival>,

    /// Open loop: cap on orchestrations in flight cluster-wide; starts due
    /// while it is reached are dropped and counted [default: a minute of
    /// arrivals, at least 100].
    #[arg(long, value_name = "N", help_heading = "Open loop")]
    pub max_in_flight: Option<u64>,

    /// Gate: merged orchestrations per second at least this.
    #[arg(long, help_heading = "Gates")]
    pub min_orch_per_sec: Option<f64>,

    /// Gate: merged end-to-end p99 at most this many milliseconds.
    #[arg(long, help_heading = "Gates")]
    pub p99_ms: Option<f64>,

    /// Gate: at most this many orchestrations may fail or stay unfinished (default 0).
    #[arg(long, help_heading = "Gates")]
    pub max_failed: Option<u64>,

    /// Warn when an agent's memory grows faster than this (MB per minute).
    #[arg(long, help_heading = "Gates")]
    pub rss_growth_mb_per_min: Option<f64>,

    /// What to do when an agent is lost mid-run (its stream breaks, or it is
    /// silent for 5 s): continue with the others, or stop them too. Either way
    /// the run is reported as degraded (exit code 4).
    #[arg(long, value_enum, env = "LOADGEN_ON_AGENT_LOSS", default_value = "continue")]
    pub on_agent_loss: crate::stream::OnAgentLoss,

    /// Interval of each agent's batched completion query (the generator's own
    /// query rate; the latency it *observes* is this coarse).
    #[arg(long, value_parser = duration, allow_hyphen_values = true, default_value = "50ms")]
    pub completion_poll: Duration,

    /// PostgreSQL URL. Without it a throwaway Postgres is started from the
    /// installed server binaries and removed at exit (--local only).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Write a self-contained HTML report (configuration, summary, charts of
    /// throughput, latency and the database over time) to this file.
    #[arg(long, env = "LOADGEN_REPORT", value_name = "FILE.html", help_heading = "Results")]
    pub report: Option<PathBuf>,

    /// Write HdrHistogram interval logs (.hlog, one per agent and merged,
    /// one interval a second) into this directory.
    #[arg(long, value_name = "DIR", help_heading = "Results")]
    pub hlog_dir: Option<PathBuf>,

    /// Progress while running: a table per agent redrawn in place (table),
    /// one line a second (line), or table on a terminal and line otherwise (auto).
    #[arg(long, value_enum, default_value = "auto", help_heading = "Results")]
    pub live: LiveMode,

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

    /// Append the run to the per-database-host results file and history under
    /// --results-dir, after comparing it with the previous comparable run.
    #[arg(long, help_heading = "Results")]
    pub track: bool,

    /// Like --track, marking the database as remote/cloud (its own results file).
    #[arg(long, help_heading = "Results")]
    pub track_cloud: bool,

    /// Where tracked results live.
    #[arg(long, env = "LOADGEN_RESULTS_DIR", default_value = "results", help_heading = "Results")]
    pub results_dir: PathBuf,

    /// Compare against this JSON result (from --json) instead of the previous tracked run.
    #[arg(long, value_name = "FILE", help_heading = "Results")]
    pub baseline: Option<PathBuf>,

    /// Fail (exit 1) on a regression (throughput -20%, p99 +50%) or excessive memory growth.
    #[arg(long, help_heading = "Results")]
    pub fail_on_regression: bool,

    /// Keep the run's schema instead of dropping it (for inspection).
    #[arg(long)]
    pub keep_schema: bool,

    /// Agent binary for --local (default: `agent` next to this executable).
    #[arg(long, env = "LOADGEN_AGENT_BIN")]
    pub agent_bin: Option<PathBuf>,

    /// Log filter (tracing EnvFilter syntax) for the coordinator, and for local agents.
    #[arg(long, env = "LOADGEN_LOG", default_value = "warn,sqlx=error")]
    pub log: String,
}

/// A command-line error as one line (clap's own is several, with usage).
pub fn parse_error_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    format!("{} (see --help)", parts.join(" ").trim_start_matches("error: "))
}

impl Args {
    /// The profile overrides given on the command line.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            max_concurrent: self.max_concurrent,
            duration: self.duration,
            tasks_per_instance: self.tasks,
            activity_delay: self.activity_delay,
            orch_concurrency: self.orch_concurrency,
            worker_concurrency: self.worker_concurrency,
            runtimes_per_agent: self.runtimes_per_agent,
            poll_interval: self.poll_interval,
            drain_timeout: self.drain_timeout,
            min_orch_per_sec: self.min_orch_per_sec,
            pool_max: self.pool_max,
            db_latency: self.db_latency,
            suite: self.suite.clone(),
            p99_ms: self.p99_ms,
            max_failed: self.max_failed,
            rss_growth_mb_per_min: self.rss_growth_mb_per_min,
            orchestrator_lock_timeout: self.orchestrator_lock_timeout,
            worker_lock_timeout: self.worker_lock_timeout,
            rate: self.rate,
            arrival: self.arrival,
            max_in_flight: self.max_in_flight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_agents_overrides_and_subcommands() {
        let c = Cli::try_parse_from(["coordinator", "--agents", "a:1,b:2", "--duration", "3s", "--tasks", "7"])
            .expect("parse");
        assert!(c.command.is_none());
        let a = c.run;
        assert_eq!(a.agents, ["a:1", "b:2"]);
        assert_eq!(a.overrides().duration, Some(Duration::from_secs(3)));
        assert_eq!(a.overrides().tasks_per_instance, Some(7));
        assert!(Cli::try_parse_from(["coordinator", "--agents", "a:1", "--local", "2"]).is_err());
        assert!(Cli::try_parse_from(["coordinator", "--local", "2", "--duration", "soon"]).is_err());
        let s = Cli::try_parse_from(["coordinator", "--local", "1", "--suite", "1:1,4:4", "--wait-timeout", "9s"])
            .expect("suite");
        assert_eq!(s.run.overrides().suite, Some(vec!["1:1".to_string(), "4:4".to_string()]));
        assert_eq!(s.run.overrides().drain_timeout, Some(Duration::from_secs(9)));
        let p = Cli::try_parse_from(["coordinator", "profiles"]).expect("profiles");
        assert!(matches!(p.command, Some(Command::Profiles { .. })));
        assert!(one_line_error(&["coordinator", "--local", "2", "--agents", "a:1"]).contains("cannot be used with"));
        let e = one_line_error(&["coordinator", "--duration", "5parsecs"]);
        assert!(!e.contains('\n') && e.contains("unknown unit"), "{e}");
    }

    fn one_line_error(args: &[&str]) -> String {
        match Cli::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => parse_error_line(&e),
        }
    }
}
