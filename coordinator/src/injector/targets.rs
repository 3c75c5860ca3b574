//! What a run's faults can reach, behind [`crate::faults::Targets`]: the
//! run's database pool, the throwaway server this coordinator started, the
//! local agents' processes and every agent's control stream (agent actions
//! travel on it as protocol messages, built here and nowhere else in the
//! fault code).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use loadgen_common::proto;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::db::RunDb;
use crate::db::embedded::{EmbeddedPostgres, Shutdown};
use crate::faults::{AgentAction, Server, Targets};

/// The run's side of the faults.
pub struct RunTargets<'a> {
    /// The run's schema (its pool reaches the database); none on SQLite.
    pub provider: Option<Arc<RunDb>>,
    /// The throwaway Postgres, when this coordinator started it.
    pub embedded: Option<&'a mut EmbeddedPostgres>,
    /// Local agents' process ids, by index.
    pub agent_pids: Vec<Option<u32>>,
    /// Every agent's control stream (agent faults travel on it).
    pub routes: Vec<UnboundedSender<proto::RunControl>>,
    /// Each agent's share of the load (its slice of the budget or rate).
    pub load_shares: Vec<f64>,
    /// Agents' reports of the faults they applied (runtime restarts).
    pub fault_done: UnboundedReceiver<(usize, proto::FaultDone)>,
}

impl RunTargets<'_> {
    /// Ask every agent to stop starting orchestrations and drain.
    pub fn stop_all(&self, reason: &str) {
        let stop = proto::RunControl {
            control: Some(proto::run_control::Control::Stop(proto::Stop { reason: reason.to_string() })),
        };
        for r in &self.routes {
            let _ = r.send(stop.clone());
        }
    }
}

#[async_trait]
impl Targets for RunTargets<'_> {
    fn database(&self) -> Option<&sqlx::PgPool> {
        self.provider.as_deref().map(RunDb::pool)
    }

    fn server(&mut self) -> Option<&mut dyn Server> {
        match self.embedded.as_deref_mut() {
            Some(pg) => Some(pg),
            None => None,
        }
    }

    fn agent_pid(&self, agent: u32) -> Option<u32> {
        self.agent_pids.get(agent as usize).copied().flatten()
    }

    fn agent_count(&self) -> u32 {
        u32::try_from(self.routes.len()).unwrap_or(u32::MAX)
    }

    fn tell_agent(&self, agent: u32, action: AgentAction) -> bool {
        let fault = match action {
            AgentAction::RelayLatency { delay, duration } => proto::AgentFault {
                kind: proto::AgentFaultKind::Latency as i32,
                duration_ms: millis(duration),
                delay_us: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
                ..Default::default()
            },
            AgentAction::RelayPartition { duration } => proto::AgentFault {
                kind: proto::AgentFaultKind::Partition as i32,
                duration_ms: millis(duration),
                ..Default::default()
            },
            AgentAction::RestartRuntime { runtime, downtime, id } => proto::AgentFault {
                kind: proto::AgentFaultKind::RestartRuntime as i32,
                duration_ms: millis(downtime),
                runtime,
                id,
                ..Default::default()
            },
        };
        let msg = proto::RunControl { control: Some(proto::run_control::Control::Fault(fault)) };
        self.routes.get(agent as usize).is_some_and(|r| r.send(msg).is_ok())
    }

    async fn agent_report(&mut self, agent: u32, id: u32) -> Option<Result<String, String>> {
        while let Some((from, done)) = self.fault_done.recv().await {
            if from == agent as usize && done.id == id {
                return Some(if done.error.is_empty() { Ok(done.detail) } else { Err(done.error) });
            }
        }
        None
    }
}

#[async_trait]
impl Server for EmbeddedPostgres {
    fn pid(&self) -> Option<u32> {
        EmbeddedPostgres::pid(self)
    }

    async fn crash_and_restart(&mut self, down: Duration) -> Result<(), String> {
        self.restart(down, Shutdown::Immediate).await.map_err(|e| e.to_string())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
