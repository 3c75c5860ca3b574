//! The throwaway high-availability cluster (`--ha`): etcd, Postgres nodes
//! under Patroni, HAProxy to the leader. The session connects through
//! HAProxy; the switchover and failover faults act on the cluster.

use std::time::Duration;

use async_trait::async_trait;

use super::DatabaseHost;
use crate::db::ha::probe::WriteProbe;
use crate::db::ha::{HaCluster, Replication};
use crate::error::CoordinatorError;
use crate::faults::{LeaderChange, Server};
use crate::notice::{Notice, Observer};

/// Postgres nodes in the cluster: a leader and one standby.
const NODES: usize = 2;
/// How long the cluster may take to follow again after a change of leader.
const HEALTHY_BOUND: Duration = Duration::from_secs(60);
/// How long a standby may take to take over from a killed leader (Patroni's
/// leader key lives 10 s).
const TAKEOVER_BOUND: Duration = Duration::from_secs(60);

pub struct Ha {
    cluster: HaCluster,
    url: String,
}

impl Ha {
    pub async fn start(replication: Replication, obs: &dyn Observer) -> Result<Self, CoordinatorError> {
        // Packages missing: the command cannot work here (exit 2), said before anything starts.
        crate::db::ha::programs().map_err(CoordinatorError::Usage)?;
        let cluster = HaCluster::start(replication, NODES).await.map_err(CoordinatorError::Embedded)?;
        let host = Ha { url: cluster.url().to_string(), cluster };
        obs.notice(&Notice::DatabaseStarted { description: &host.description() });
        Ok(host)
    }
}

#[async_trait]
impl DatabaseHost for Ha {
    fn url(&self) -> &str {
        &self.url
    }

    fn description(&self) -> String {
        self.cluster.describe()
    }

    fn host_label(&self) -> String {
        "embedded-ha".into()
    }

    fn is_throwaway(&self) -> bool {
        true
    }

    fn server(&mut self) -> Option<&mut dyn Server> {
        Some(self)
    }

    async fn stop(&mut self) {
        self.cluster.stop();
    }
}

#[async_trait]
impl Server for Ha {
    /// The leader changes: no single postmaster to signal.
    fn pid(&self) -> Option<u32> {
        None
    }

    async fn crash_and_restart(&mut self, _down: Duration) -> Result<(), String> {
        Err("on --ha, the failover fault crashes the leader".into())
    }

    async fn switchover(&mut self, drain: bool) -> Result<LeaderChange, String> {
        let probe = WriteProbe::start(&self.url);
        let (old, new) = self.cluster.switchover(drain).await?;
        self.cluster.wait_healthy(HEALTHY_BOUND).await?;
        let writes = probe.finish().await;
        let how = if drain { "HAProxy drained of it first, then Patroni" } else { "Patroni" };
        let detail = format!("planned switchover from {old} to {new} ({how}); {old} follows again; {}", writes.line());
        Ok(LeaderChange { detail, writes })
    }

    async fn fail_leader(&mut self, down: Duration) -> Result<LeaderChange, String> {
        let probe = WriteProbe::start(&self.url);
        let began = std::time::Instant::now();
        let old = self.cluster.kill_leader().await?;
        tokio::time::sleep(down).await;
        // A failover, not a restart: the old node stays down until another leads.
        let new = self.cluster.wait_for_leader_other_than(&old, TAKEOVER_BOUND).await?;
        let took = began.elapsed();
        self.cluster.restart_node(&old)?;
        self.cluster.wait_healthy(HEALTHY_BOUND).await?;
        let writes = probe.finish().await;
        let detail = format!(
            "{old}'s Patroni and Postgres killed; {new} led {:.1}s later; {old} restarted then and follows; {}",
            took.as_secs_f64(),
            writes.line()
        );
        Ok(LeaderChange { detail, writes })
    }
}
