//! `restart-runtime`: shut one runtime inside an agent down (a second's
//! grace, then its in-flight work is abandoned), leave it down for the
//! fault's duration (default none) and start a fresh one with a new worker
//! id, as a rolling restart of one process does. Applied by the agent, so
//! it reaches remote agents too.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::faults::{
    AgentAction, Apply, Failure, Fault, FaultDef, Lasting, Reach, check_agent_index, fmt_duration, read_fields,
};

pub const DEF: FaultDef = FaultDef {
    name: "restart-runtime",
    about: "shut one runtime of an agent down, keep it down for the duration (default none), start a fresh one",
    fields: &[("agent", "the agent's index (default 0)"), ("runtime", "which of its runtimes (default 0)")],
    lasting: Lasting::Optional,
    parse: |fields| Ok(Box::new(read_fields::<RestartRuntime>(fields)?)),
};

/// Bound on the restart beyond its downtime (a second's grace, a bounded
/// shutdown, connecting and starting a fresh runtime).
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartRuntime {
    #[serde(default)]
    agent: u32,
    #[serde(default)]
    runtime: u32,
}

#[async_trait]
impl Fault for RestartRuntime {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        format!("agent {} runtime {}", self.agent, self.runtime)
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        check_agent_index(name, self.agent, reach)
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let agent = self.agent;
        let action = AgentAction::RestartRuntime { runtime: self.runtime, downtime: cx.length, id: cx.id };
        if !cx.targets.tell_agent(agent, action) {
            return Err(format!("agent {agent} did not take the fault (no such agent, or its stream is closed)").into());
        }
        // The agent answers when the fresh runtime runs (or it failed).
        let bound = cx.length + RESTART_TIMEOUT;
        match tokio::time::timeout(bound, cx.targets.agent_report(agent, cx.id)).await {
            Ok(Some(Ok(detail))) => Ok(format!("agent {agent}: {detail}")),
            Ok(Some(Err(error))) => Err(format!("agent {agent}: {error}").into()),
            Ok(None) => Err(format!("agent {agent} ended before it reported the restart").into()),
            Err(_) => Err(format!("agent {agent} did not report the restart within {}", fmt_duration(bound)).into()),
        }
    }
}
