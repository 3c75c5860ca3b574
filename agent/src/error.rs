//! Errors of the agent, and their one mapping onto gRPC statuses.

use thiserror::Error;
use tonic::Status;

use crate::scenario::ScenarioError;

/// Why the agent refused or failed a request.
#[derive(Debug, Error)]
pub enum AgentError {
    #[error("agent is busy with run {run_id} ({phase}); release it first")]
    Busy { run_id: String, phase: &'static str },
    #[error("no run {run_id} is {expected} on this agent")]
    UnknownRun { run_id: String, expected: &'static str },
    #[error("invalid {field}: {detail}")]
    InvalidRequest { field: &'static str, detail: String },
    /// Database failure; the message has already been scrubbed of passwords.
    #[error("database: {0}")]
    Database(String),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
}

impl From<AgentError> for Status {
    fn from(e: AgentError) -> Self {
        let message = e.to_string();
        match e {
            AgentError::Busy { .. } => Status::failed_precondition(message),
            AgentError::UnknownRun { .. } => Status::not_found(message),
            AgentError::InvalidRequest { .. } | AgentError::Scenario(_) => Status::invalid_argument(message),
            AgentError::Database(_) => Status::unavailable(message),
        }
    }
}
