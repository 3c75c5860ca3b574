//! `db-partition`: pass none of an agent's (or every agent's) database
//! traffic for the fault's duration, through the agent's relay: the
//! connections stay open and nothing arrives, as in a network partition
//! (no reset, no error until a timeout).

use async_trait::async_trait;
use serde::Deserialize;

use super::relay;
use crate::faults::{AgentAction, Apply, Failure, Fault, FaultDef, Lasting, Reach, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "db-partition",
    about: "pass none of agents' database traffic for the duration (through their relays; connections stay open)",
    fields: &[("agent", "one agent's traffic (default every agent's)")],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<DbPartition>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DbPartition {
    agent: Option<u32>,
}

#[async_trait]
impl Fault for DbPartition {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        relay::target(self.agent)
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        relay::check(name, self.agent, reach)
    }

    fn needs_relay(&self) -> bool {
        true
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let sent = relay::tell(&cx, self.agent, AgentAction::RelayPartition { duration: cx.length })?;
        // The agents undo it after the duration; the fault lasts that long.
        tokio::time::sleep(cx.length).await;
        Ok(format!("{sent} agent(s): no database traffic for {}", fmt_duration(cx.length)))
    }
}
