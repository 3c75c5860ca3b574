//! `kill-agent`: SIGKILL a local agent. Its orchestrations must be finished
//! by the other agents' runtimes (the durability the provider promises);
//! its loss is planned, so the run is not degraded by it.

use async_trait::async_trait;
use loadgen_common::process::{self, SIGKILL};
use serde::Deserialize;

use crate::faults::{AgentLoss, Apply, Failure, Fault, FaultDef, Lasting, Reach, check_local_agent, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "kill-agent",
    about: "SIGKILL a local agent; the others must finish its orchestrations",
    fields: &[("agent", "the agent's index (default 0)")],
    lasting: Lasting::Instant,
    parse: |fields| Ok(Box::new(read_fields::<KillAgent>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillAgent {
    #[serde(default)]
    agent: u32,
}

#[async_trait]
impl Fault for KillAgent {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        format!("agent {}", self.agent)
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        check_local_agent(name, self.agent, reach)
    }

    fn agent_loss(&self) -> Option<AgentLoss> {
        Some(AgentLoss { agent: self.agent, permanent: true })
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let pid =
            cx.targets.agent_pid(self.agent).ok_or_else(|| format!("agent {} has no process here", self.agent))?;
        if process::signal(pid, SIGKILL) {
            Ok(format!("pid {pid} killed"))
        } else {
            Err(format!("pid {pid} gone").into())
        }
    }
}
