//! Errors of the coordinator and the exit codes they map to.

use thiserror::Error;

/// Exit code of a run that passed every gate.
pub const EXIT_OK: u8 = 0;
/// Exit code of a run that completed but failed a gate.
pub const EXIT_GATES_FAILED: u8 = 1;
/// Exit code of bad input (flags, profile, agent list, budget).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a run that could not be carried out (database, agents).
pub const EXIT_RUN_FAILED: u8 = 3;
/// Exit code of a run that finished degraded (an agent was lost).
pub const EXIT_DEGRADED: u8 = 4;
/// Exit code after Ctrl-C or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why a run could not be carried out. Every message is one line and carries
/// no password.
#[derive(Debug, Error)]
pub enum CoordinatorError {
    /// The plan cannot be carried out as asked; nothing was started.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// The agents or the database refuse the plan (a wrong token, too few
    /// connections); everything started was taken down.
    #[error("{0}")]
    Usage(String),
    /// An agent refuses this coordinator (a wrong token, the same process
    /// listed twice): waiting for it would not help, unlike an agent that
    /// is unreachable or busy ([`CoordinatorError::Agent`]).
    #[error("agent {agent} {reason}")]
    Refused { agent: String, reason: String },
    /// The plan's pools do not fit in the server's free connections; the
    /// message says what would fit.
    #[error("the plan needs up to {need} connections {detail}")]
    TooFewConnections { need: u64, available: u64, detail: String },
    /// A `--baseline` file that cannot be read as a result.
    #[error("{detail}")]
    Baseline { path: String, detail: String },
    /// The database could not be reached, or a statement on it failed
    /// (built by `db::connect_err` and `db::db_err`, password scrubbed).
    #[error("database: {0}")]
    Database(String),
    /// duroxide's stress module (`coordinator bench`) failed or gave no result.
    #[error("duroxide stress module {0}")]
    Stress(String),
    #[error("agent {address}: {detail}")]
    Agent { address: String, detail: String },
    /// The throwaway Postgres could not be started.
    #[error("{0}")]
    Embedded(String),
    #[error("local agents: {0}")]
    Local(String),
    #[error("run did not finish within {0:?}; agents were released")]
    Timeout(std::time::Duration),
    #[error("interrupted; agents released and resources cleaned up")]
    Interrupted,
    #[error("cannot write {path}: {detail}")]
    Output { path: String, detail: String },
}

impl CoordinatorError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CoordinatorError::Usage(_)
            | CoordinatorError::Plan(_)
            | CoordinatorError::Refused { .. }
            | CoordinatorError::TooFewConnections { .. }
            | CoordinatorError::Baseline { .. } => EXIT_USAGE,
            CoordinatorError::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_RUN_FAILED,
        }
    }

    pub(crate) fn agent(address: &str, detail: impl std::fmt::Display) -> Self {
        CoordinatorError::Agent { address: address.to_string(), detail: one_line(&detail.to_string()) }
    }
}

/// Collapse a multi-line message into one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<crate::plan::ConfigError> for CoordinatorError {
    fn from(e: crate::plan::ConfigError) -> Self {
        CoordinatorError::Plan(e.into())
    }
}

impl From<loadgen_scenarios::ScenarioError> for CoordinatorError {
    fn from(e: loadgen_scenarios::ScenarioError) -> Self {
        CoordinatorError::Plan(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_bad_input_and_read_as_one_line() {
        let token = CoordinatorError::Refused { agent: "127.0.0.1:7000".into(), reason: "refused our token".into() };
        assert_eq!(token.to_string(), "agent 127.0.0.1:7000 refused our token");
        let fit = CoordinatorError::TooFewConnections { need: 90, available: 40, detail: "(3 agent(s) ...)".into() };
        assert!(fit.to_string().starts_with("the plan needs up to 90 connections ("));
        for e in [token, fit, CoordinatorError::Baseline { path: "b.json".into(), detail: "not a result".into() }] {
            assert_eq!(e.exit_code(), EXIT_USAGE, "{e}");
        }
        // An agent that is unreachable or busy may come back: not bad input.
        assert_eq!(CoordinatorError::agent("a:1", "unreachable").exit_code(), EXIT_RUN_FAILED);
        assert_eq!(CoordinatorError::Local("the bench run produced no report".into()).exit_code(), EXIT_RUN_FAILED);
    }
}
