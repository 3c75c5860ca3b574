//! What happens during a run that the person running it should hear about,
//! as it happens: the domain says what ([`Notice`]), an [`Observer`] decides
//! how it is shown (the console renderer prints to stderr; tests listen or
//! stay silent). Library code never prints.

use crate::model::RunReport;
use crate::model::live::Frame;

/// One thing worth telling, as it happens.
#[derive(Debug)]
pub enum Notice<'a> {
    /// A throwaway database was started for the run.
    DatabaseStarted { description: &'a str },
    /// Still waiting for agents to answer.
    WaitingForAgents { elapsed_s: f64, timeout: &'a str, status: &'a str },
    /// The agents that will take part.
    AgentsReady { elapsed_s: f64, addresses: Vec<&'a str> },
    /// A run starts (one of `of` in a suite or sweep; `of` 0: one of an
    /// open-ended series, a hunt, named by `label`).
    RunStarting {
        run_id: &'a str,
        schema: &'a str,
        agents: usize,
        load: String,
        n: usize,
        of: usize,
        label: &'a str,
        profile: &'a str,
        scenario: &'a str,
        /// The duroxide-pg builds the agents run ("0.1.38", or several).
        builds: String,
    },
    /// The live view, once a second.
    Live(&'a Frame<'a>),
    /// An agent was lost mid-run.
    AgentLost { index: usize, address: &'a str, at_s: f64, reason: &'a str, stopping_others: bool },
    /// Orchestrations of lost agents the others are still finishing.
    WaitingForOrphans { open: u64 },
    /// A file was written.
    Wrote { what: &'static str, path: String },
    /// Something went wrong that does not stop the run.
    Warning(String),
    /// Something the user should know (a kept schema, a step's result).
    Note(String),
    /// A fault of the schedule is being applied (seconds since the start).
    FaultBegan { kind: &'a str, target: &'a str, at_s: f64 },
    /// It was undone (or failed to apply: `failed`).
    FaultEnded { kind: &'a str, at_s: f64, end_s: f64, failed: bool },
    /// A run's result is assembled (not yet written).
    RunEnded(&'a RunReport),
}

/// Receives notices.
pub trait Observer: Send + Sync {
    fn notice(&self, n: &Notice<'_>);
}

/// An observer that shows nothing (for library callers and tests).
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn notice(&self, _: &Notice<'_>) {}
}
