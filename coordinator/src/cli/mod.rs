//! The command line (clap derive) and its resolution into plans. This is the
//! only module that knows the clap structs: [`resolve`] turns them into a
//! [`crate::plan::RunPlan`] (and the sweep's and bench's plans), which is all
//! the library below ever sees.
//!
//! - [`args`]: the flags of a run;
//! - [`commands`]: the subcommands' own flags;
//! - [`comparisons`]: the plans of `compare` and `ab`;
//! - [`matrix`]: the plan of `matrix`;
//! - [`resolve`]: flags + profile -> plans, checked.

use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen_common::units;

pub mod args;
pub mod commands;
pub mod comparisons;
pub mod matrix;
pub mod resolve;

pub use args::Args;
pub use commands::{AbArgs, AuditArgs, BenchArgs, CleanupArgs, CompareArgs, HuntArgs, MatrixArgs, SweepArgs};

fn rate(text: &str) -> Result<f64, String> {
    units::parse_rate(text).map_err(|e| e.to_string())
}

fn duration(text: &str) -> Result<Duration, String> {
    units::parse_duration(text).map_err(|e| e.to_string())
}

fn assignment(text: &str) -> Result<(String, String), String> {
    loadgen_scenarios::options::parse_assignment(text)
}

/// Coordinator of the duroxide-pg load generator.
///
/// Splits a cluster-wide budget of in-flight orchestrations (or an arrival
/// rate) over agents, starts them at one instant, shows live progress, merges
/// their HDR latency histograms exactly, audits every instance in the
/// database and checks the result against must-pass gates.
///
/// Examples:
///   coordinator --local 3 --profile light                     # throwaway Postgres, 3 local agents
///   coordinator --local 2 --scenario timers --set timers=3    # another workload (see `scenarios`)
///   coordinator --local 3 --profile mixed --json out.json     # every primitive, audited per instance
///   coordinator --local 2 --rate 40/s --report run.html       # open loop, HTML report
///   coordinator sweep --local 2 --slo-p99 500ms               # capacity at a latency objective
///   coordinator ab --baseline-agent A --candidate-agent B     # did a build of duroxide-pg get slower?
///   coordinator compare --providers sqlite-memory,postgres    # Postgres against duroxide's SQLite provider
///   coordinator profiles | coordinator scenarios              # what there is to run
///   DATABASE_URL=postgres://u:p@db/x LOADGEN_TOKEN=... coordinator --agents a:7000,b:7000 --profile production --track
///
/// Exit codes: 0 gates passed, 1 a gate or the audit failed (or a
/// regression with --fail-on-regression), 2 bad input, 3 the run could not
/// be carried out (database or agent trouble), 4 degraded (an agent was
/// lost), 130 interrupted.
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
    /// Did a change make it slower? Run the same profile alternately with
    /// local agents from two agent binaries (baseline and candidate), each run
    /// on a fresh schema its own build migrates; per metric (orch/s, p50, p99,
    /// commits per orchestration, and per stored procedure) the candidate's
    /// median over the baseline's with a 95% bootstrap interval and a verdict:
    /// faster, slower, or no significant difference.
    ///
    /// Example: coordinator ab --baseline-agent target/release/agent --candidate-agent ../pg-dev/agent --repeat 5 --report ab.html
    Ab {
        #[command(flatten)]
        ab: AbArgs,
        #[command(flatten)]
        run: Box<Args>,
    },
    /// The same workload on several providers (duroxide's SQLite provider
    /// and duroxide-pg), per dispatcher combination (--suite 1:1,2:2,4:4, or
    /// the profile's), repeated with the order rotating: orch/s min / median
    /// / max, p50 / p99, and the Postgres/SQLite ratio next to the range the
    /// plan expects. One local agent per provider unless --local says more
    /// (SQLite: one).
    ///
    /// Example: coordinator compare --providers sqlite-memory,postgres --suite 1:1,2:2,4:4 --duration 5s --report compare.html
    Compare {
        #[command(flatten)]
        compare: CompareArgs,
        #[command(flatten)]
        run: Box<Args>,
    },
    /// Hunt a race: repeat the same run (each on a fresh schema, each with its
    /// own seed unless --seed fixes one) until its audit breaks an invariant
    /// (a message processed twice, work lost or left queued) or the time
    /// budget ends; show the run that broke, the command that replays its
    /// workload, and how many of the tries found it.
    ///
    /// Example: coordinator hunt --budget 10m --local 2 --build 0.1.37 --profile mixed --duration 30s --faults skew.toml
    Hunt {
        #[command(flatten)]
        hunt: HuntArgs,
        #[command(flatten)]
        run: Box<Args>,
    },
    /// How the provider meets each error class the server can answer, and each
    /// timing fault: one short run per fault (the mixed workload, 12 s, the
    /// fault at 3 s for 4 s, at most 35 s for the last instances), and per
    /// fault the calls hit, the provider's
    /// own retries, orchestrations failed by category, messages processed
    /// twice, work lost, the recovery time and a verdict (tolerated, fails
    /// work, duplicates work, loses work). With --builds, a column per build
    /// with the faults whose verdicts differ marked. Exit 0 only when every
    /// verdict is tolerated, or as --expect FILE says.
    ///
    /// Example: coordinator matrix --builds 0.1.37,0.1.38 --report matrix.html --json matrix.json
    Matrix {
        #[command(flatten)]
        matrix: MatrixArgs,
        #[command(flatten)]
        run: Box<Args>,
    },
    /// List the profiles (built-in and from --profile-file) with their values and gates.
    Profiles {
        /// Also list the profiles of this TOML file.
        #[arg(long, env = "LOADGEN_PROFILE_FILE")]
        profile_file: Option<std::path::PathBuf>,
    },
    /// List the scenarios: what each stresses, its options and their defaults.
    Scenarios,
    /// List the fault kinds a schedule (--faults) can use: what each does,
    /// whether it lasts, and its fields.
    Faults,
    /// Run duroxide's own stress module and this tool (one local agent) side by
    /// side on one provider, per dispatcher setting, and compare throughput,
    /// CPU seconds per 1,000 orchestrations and (Postgres) commits per
    /// orchestration. On sqlite-memory, also the highest open-loop rate one
    /// agent holds with under 1% late starts.
    ///
    /// Example: coordinator bench --provider sqlite-memory --min-throughput-ratio 1.0 --json bench.json
    Bench(BenchArgs),
    /// Audit a kept schema (from --keep-schema) instance by instance: each
    /// terminal exactly once with its scenario's status, output, executions
    /// and history; nothing queued. Exit 0 when it passes, 1 when it does not.
    Audit(AuditArgs),
    /// List the loadgen_* schemas left in a database (by a coordinator that
    /// was killed, or --keep-schema) with their run, age, instances and
    /// size; drop the chosen ones (--older-than, --run, --all) with --yes.
    /// With --servers: the throwaway servers (--ha clusters, throwaway
    /// Postgres) a killed coordinator left on this machine.
    ///
    /// Example: coordinator cleanup --database-url postgres://... --older-than 1h --yes
    /// Example: coordinator cleanup --servers --yes
    Cleanup(CleanupArgs),
    /// Internal: run duroxide's stress module once in this process and print
    /// its outcome as one JSON line (`bench` starts it as a child, so the
    /// module's CPU is measured like an agent's).
    #[command(hide = true)]
    StressModule {
        /// The job (JSON: provider and the module's configuration).
        #[arg(long)]
        job: String,
    },
}

/// A command-line error as one line (clap's own is several, with usage).
pub fn parse_error_line(e: &clap::Error) -> String {
    loadgen_common::startup::usage_line(&e.to_string())
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
    fn renamed_flags_are_still_accepted() {
        for flag in ["--completion-source", "--completion-tracking"] {
            let c = Cli::try_parse_from(["coordinator", flag, "agent"]).expect(flag);
            assert_eq!(c.run.completion_source, crate::plan::CompletionSource::Agent, "{flag}");
        }
        let mut json = serde_json::to_value(crate::model::DbLoad::default()).expect("json");
        let fields = json.as_object_mut().expect("an object");
        fields.remove("completion_source");
        fields.insert("completion_tracking".into(), "agent".into());
        let old: crate::model::DbLoad = serde_json::from_value(json).expect("an old result file reads");
        assert_eq!(old.completion_source, "agent");
    }

    #[test]
    fn parses_agents_overrides_and_subcommands() {
        let c = Cli::try_parse_from(["coordinator", "--agents", "a:1,b:2", "--duration", "3s", "--tasks", "7"])
            .expect("parse");
        assert!(c.command.is_none());
        assert_eq!(c.run.agents, ["a:1", "b:2"]);
        assert_eq!((c.run.duration, c.run.tasks), (Some(Duration::from_secs(3)), Some(7)));
        assert!(Cli::try_parse_from(["coordinator", "--agents", "a:1", "--local", "2"]).is_err());
        assert!(Cli::try_parse_from(["coordinator", "--local", "2", "--duration", "soon"]).is_err());
        let s = Cli::try_parse_from(["coordinator", "--local", "1", "--suite", "1:1,4:4", "--wait-timeout", "9s"])
            .expect("suite");
        assert_eq!(s.run.suite, Some(vec!["1:1".to_string(), "4:4".to_string()]));
        assert_eq!(s.run.drain_timeout, Some(Duration::from_secs(9)));
        let set =
            Cli::try_parse_from(["coordinator", "--local", "1", "--set", "weights=fanout:3,timers:1", "--set", "x=1"])
                .expect("set");
        assert_eq!(set.run.set, [("weights".into(), "fanout:3,timers:1".into()), ("x".into(), "1".into())]);
        let p = Cli::try_parse_from(["coordinator", "profiles"]).expect("profiles");
        assert!(matches!(p.command, Some(Command::Profiles { .. })));
        assert!(matches!(
            Cli::try_parse_from(["coordinator", "scenarios"]).expect("scenarios").command,
            Some(Command::Scenarios)
        ));
        assert!(matches!(
            Cli::try_parse_from(["coordinator", "faults"]).expect("faults").command,
            Some(Command::Faults)
        ));
        assert!(one_line_error(&["coordinator", "--local", "2", "--agents", "a:1"]).contains("cannot be used with"));
        let e = one_line_error(&["coordinator", "--duration", "5parsecs"]);
        assert!(!e.contains('\n') && e.contains("unknown unit"), "{e}");
        let e = one_line_error(&["coordinator", "--local", "1", "--arrival", "bursty"]);
        assert!(e.contains("invalid value 'bursty'") && e.contains("constant"), "{e}");
        assert!(one_line_error(&["coordinator", "--local", "1", "--set", "novalue"]).contains("expected key=value"));
    }

    fn one_line_error(args: &[&str]) -> String {
        match Cli::try_parse_from(args) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => parse_error_line(&e),
        }
    }
}
