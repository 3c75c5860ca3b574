//! Command-line interface of the coordinator (clap derive). Every setting a
//! deployment would pin has an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use loadgen_common::config::{self, ConfigError, Overrides};

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
///   coordinator --local 2 --profile standard --json out.json
///   DATABASE_URL=postgres://u:p@db/x coordinator --agents a:7000,b:7000 --profile production
///
/// Exit codes: 0 gates passed, 1 a gate failed, 2 bad input, 3 the run could
/// not be carried out (database or agent trouble), 130 interrupted.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version, verbatim_doc_comment)]
pub struct Args {
    /// Agents to drive, as host:port[,host:port...].
    #[arg(
        long,
        env = "LOADGEN_AGENTS",
        value_delimiter = ',',
        conflicts_with = "local",
        required_unless_present = "local"
    )]
    pub agents: Vec<String>,

    /// Spawn N agent processes on loopback (free ports) and stop them at the end.
    #[arg(long, value_name = "N")]
    pub local: Option<u32>,

    /// Named load profile: light, standard, production, high-concurrency.
    #[arg(long, env = "LOADGEN_PROFILE", default_value = "light")]
    pub profile: String,

    /// How long new orchestrations are started (e.g. 30s, 2m); overrides the profile.
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,

    /// Orchestrations kept in flight cluster-wide; overrides the profile.
    #[arg(long)]
    pub max_concurrent: Option<u64>,

    /// Activities each orchestration fans out to; overrides the profile.
    #[arg(long)]
    pub tasks: Option<u32>,

    /// How long each activity sleeps (e.g. 10ms); overrides the profile.
    #[arg(long, value_parser = duration)]
    pub activity_delay: Option<Duration>,

    /// Orchestration dispatcher slots per runtime; overrides the profile.
    #[arg(long)]
    pub orch_concurrency: Option<u32>,

    /// Worker (activity) dispatcher slots per runtime; overrides the profile.
    #[arg(long)]
    pub worker_concurrency: Option<u32>,

    /// duroxide runtimes per agent process; overrides the profile.
    #[arg(long)]
    pub runtimes_per_agent: Option<u32>,

    /// Idle poll interval of each dispatcher (the provider's latency floor).
    #[arg(long, value_parser = duration)]
    pub poll_interval: Option<Duration>,

    /// How long in-flight orchestrations may take to finish after the deadline.
    #[arg(long, value_parser = duration)]
    pub drain_timeout: Option<Duration>,

    /// Must-pass gate: merged orchestrations per second at least this.
    #[arg(long)]
    pub min_orch_per_sec: Option<f64>,

    /// Interval of each agent's batched completion query (the resolution of
    /// end-to-end latency, and the generator's own query rate).
    #[arg(long, value_parser = duration, default_value = "50ms")]
    pub completion_poll: Duration,

    /// PostgreSQL URL. Without it a throwaway Postgres is started from the
    /// installed server binaries and removed at exit (--local only).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Write the full result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_agents_and_overrides() {
        let a = Args::try_parse_from(["coordinator", "--agents", "a:1,b:2", "--duration", "3s", "--tasks", "7"])
            .expect("parse");
        assert_eq!(a.agents, ["a:1", "b:2"]);
        assert_eq!(a.overrides().duration, Some(Duration::from_secs(3)));
        assert_eq!(a.overrides().tasks_per_instance, Some(7));
        assert!(Args::try_parse_from(["coordinator", "--agents", "a:1", "--local", "2"]).is_err());
        assert!(Args::try_parse_from(["coordinator", "--local", "2", "--duration", "soon"]).is_err());
    }
}
