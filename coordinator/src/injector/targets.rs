//! What a run's faults can reach, behind [`crate::faults::Targets`]: the
//! run's database pool, the throwaway server this coordinator started, the
//! local agents' processes and every agent's control stream (agent actions
//! travel on it through [`Route::fault`]).

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::agents::run::{FaultReport, Route};
use crate::db::RunDb;
use crate::faults::{AgentAction, Server, Targets};

/// The run's side of the faults.
pub struct RunTargets<'a> {
    /// The run's schema (its pool reaches the database); none on SQLite.
    pub provider: Option<Arc<RunDb>>,
    /// The server this coordinator controls (the throwaway Postgres).
    pub server: Option<&'a mut dyn Server>,
    /// Local agents' process ids, by index.
    pub agent_pids: Vec<Option<u32>>,
    /// Every agent's control stream (agent faults travel on it).
    pub routes: Vec<Route>,
    /// Each agent's share of the load (its slice of the budget or rate).
    pub load_shares: Vec<f64>,
    /// Agents' reports of the faults they applied (runtime restarts).
    pub fault_done: UnboundedReceiver<FaultReport>,
    /// Agent binaries of the builds the faults need, by release.
    pub builds: std::collections::BTreeMap<String, std::path::PathBuf>,
}

impl RunTargets<'_> {
    /// Ask every agent to stop starting orchestrations and drain.
    pub fn stop_all(&self, reason: &str) {
        for r in &self.routes {
            r.stop(reason);
        }
    }
}

#[async_trait]
impl Targets for RunTargets<'_> {
    fn database(&self) -> Option<&sqlx::PgPool> {
        self.provider.as_deref().map(RunDb::pool)
    }

    fn agent_binary(&self, build: &str) -> Option<std::path::PathBuf> {
        self.builds.get(build).cloned()
    }

    fn schema(&self) -> Option<&str> {
        self.provider.as_deref().map(RunDb::schema_name)
    }

    fn server(&mut self) -> Option<&mut dyn Server> {
        match &mut self.server {
            Some(s) => Some(&mut **s),
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
        self.routes.get(agent as usize).is_some_and(|r| r.fault(action))
    }

    async fn agent_report(&mut self, agent: u32, id: u32) -> Option<Result<String, String>> {
        while let Some((from, done, result)) = self.fault_done.recv().await {
            if from == agent as usize && done == id {
                return Some(result);
            }
        }
        None
    }
}
