//! Scenarios: one orchestration shape plus its activities, registered
//! identically on every runtime of every agent (a runtime that meets an
//! unregistered orchestration abandons it until it turns poison).
//!
//! Each scenario lives in its own small file; [`build`] is the one explicit
//! list that maps a name from the wire to an implementation.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use duroxide::OrchestrationRegistry;
use duroxide::runtime::registry::ActivityRegistry;
use loadgen_common::proto;
use thiserror::Error;

pub mod fanout;

/// A workload the agent can drive.
pub trait Scenario: Send + Sync + std::fmt::Debug {
    /// Name on the wire and in reports.
    fn name(&self) -> &'static str;
    /// Name of the orchestration to start.
    fn orchestration(&self) -> &'static str;
    /// Input of every instance.
    fn input(&self) -> String;
    /// Output every instance must complete with (the audit compares it).
    fn expected_output(&self) -> String;
    /// Activities each instance runs when nothing is redelivered.
    fn activities_per_instance(&self) -> u64;
    /// Registries for one runtime; every activity execution increments `executed`.
    fn registries(&self, executed: Arc<AtomicU64>) -> (ActivityRegistry, OrchestrationRegistry);
}

/// The scenario request could not be honoured.
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("unknown scenario {0:?} (known: {known})", known = KNOWN.join(", "))]
    Unknown(String),
    #[error("invalid option for scenario {scenario}: {detail}")]
    InvalidOption { scenario: &'static str, detail: String },
}

/// Every scenario this agent knows, by wire name.
pub const KNOWN: &[&str] = &[fanout::NAME];

/// Build the scenario a Prepare request names.
pub fn build(spec: &proto::Scenario) -> Result<Arc<dyn Scenario>, ScenarioError> {
    match spec.name.as_str() {
        fanout::NAME => Ok(Arc::new(fanout::Fanout::from_spec(spec)?)),
        other => Err(ScenarioError::Unknown(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scenarios_are_named() {
        let e = build(&proto::Scenario { name: "nope".into(), ..Default::default() }).expect_err("unknown");
        assert_eq!(e.to_string(), "unknown scenario \"nope\" (known: fanout)");
    }
}
