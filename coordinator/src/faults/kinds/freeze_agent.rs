//! `freeze-agent`: SIGSTOP a local agent for the fault's duration, then
//! SIGCONT: a process that hangs (a long GC pause, a stalled VM) while its
//! runtimes hold locks and its stream stays open.

use async_trait::async_trait;
use loadgen_common::process::{self, SIGSTOP};
use serde::Deserialize;

use crate::faults::{
    AgentLoss, Apply, Failure, Fault, FaultDef, Lasting, Reach, check_local_agent, fmt_duration, read_fields,
};

pub const DEF: FaultDef = FaultDef {
    name: "freeze-agent",
    about: "SIGSTOP a local agent for the duration, then SIGCONT",
    fields: &[("agent", "the agent's index (default 0)")],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<FreezeAgent>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeAgent {
    #[serde(default)]
    agent: u32,
}

#[async_trait]
impl Fault for FreezeAgent {
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
        Some(AgentLoss { agent: self.agent, permanent: false })
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let pid =
            cx.targets.agent_pid(self.agent).ok_or_else(|| format!("agent {} has no process here", self.agent))?;
        if !process::signal(pid, SIGSTOP) {
            return Err(format!("pid {pid} gone").into());
        }
        // Resumed even if this future is dropped (an interrupted run).
        let resume = process::Resume::new(vec![pid]);
        tokio::time::sleep(cx.length).await;
        drop(resume);
        Ok(format!("pid {pid} stopped for {}", fmt_duration(cx.length)))
    }
}
