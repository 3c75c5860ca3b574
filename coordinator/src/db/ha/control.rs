//! Changing the leader on purpose (a planned switchover through Patroni) or
//! by force (the leader's Patroni and Postgres killed), and taking the
//! whole cluster down with nothing left behind.

use std::process::Child;
use std::time::{Duration, Instant};

use loadgen_common::process;

use super::HaCluster;
use super::config::Layout;
use super::rest;

/// How long each process may take to stop before it is killed.
const STOP_BOUND: Duration = Duration::from_secs(15);
/// How long a new leader may take to leave recovery once Patroni says it leads.
const WRITABLE_BOUND: Duration = Duration::from_secs(30);

/// The postmaster's pid of the data directory `data`, while it runs.
fn postmaster_pid(data: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(data.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
}

/// SIGTERM (or `signal`) then wait, bounded; SIGKILL when it does not end.
fn stop_child(child: &mut Child, signal: i32) {
    process::signal(child.id(), signal);
    let deadline = Instant::now() + STOP_BOUND;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl HaCluster {
    /// A planned switchover to another node (Patroni's REST API): the old
    /// and the new leader, once the new one leads. `drain`: hold every client
    /// at HAProxy while the leader changes, as a careful operator does: both
    /// nodes out of rotation and the old leader's sessions cut first (so no
    /// statement is under way when Patroni shuts it down), the new leader
    /// back once it takes writes (Patroni says it leads a moment before it
    /// has left recovery), the old one only through a passing health check.
    pub async fn switchover(&self, drain: bool) -> Result<(String, String), String> {
        let old = self.leader().await.ok_or("switchover: the cluster has no leader")?;
        let new = (0..self.layout.nodes.len())
            .map(Layout::node_name)
            .find(|n| *n != old)
            .ok_or("switchover: the cluster has no other node")?;
        if !drain {
            return self.switch(&old, &new).await;
        }
        let held = async {
            for n in [&new, &old] {
                self.proxy_command(&format!("set server primary/{n} state maint")).await?;
            }
            self.proxy_command(&format!("shutdown sessions server primary/{old}")).await?;
            let switched = self.switch(&old, &new).await?;
            self.wait_writable(&new, WRITABLE_BOUND).await?;
            Ok::<_, String>(switched)
        };
        let switched = held.await;
        // Back into rotation whatever happened: the new leader as up (it takes
        // writes), the old as down until its health check passes.
        let mut back = Ok(String::new());
        for (n, health) in [(&new, "up"), (&old, "down")] {
            for command in
                [format!("set server primary/{n} health {health}"), format!("set server primary/{n} state ready")]
            {
                let done = self.proxy_command(&command).await;
                back = back.and(done);
            }
        }
        let switched = switched?;
        back?;
        Ok(switched)
    }

    /// Wait (at most `bound`) until node `name`'s Postgres takes writes.
    async fn wait_writable(&self, name: &str, bound: Duration) -> Result<(), String> {
        let i = (0..self.layout.nodes.len()).find(|&i| Layout::node_name(i) == name).ok_or("unknown node")?;
        let url = format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres?sslmode=disable",
            self.layout.superuser_password, self.layout.nodes[i].pg
        );
        let deadline = Instant::now() + bound;
        while !super::takes_writes(&url).await {
            if Instant::now() >= deadline {
                return Err(format!("{name} did not take writes within {bound:?} of leading"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// One command on HAProxy's admin socket: its answer.
    async fn proxy_command(&self, command: &str) -> Result<String, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = self.layout.proxy_socket();
        let exchange = async {
            let mut s = tokio::net::UnixStream::connect(&socket).await.map_err(|e| e.to_string())?;
            s.write_all(format!("{command}\n").as_bytes()).await.map_err(|e| e.to_string())?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(out.trim().to_string())
        };
        let answer = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| format!("HAProxy did not answer {command:?} within 5s"))?
            .map_err(|e| format!("HAProxy's admin socket ({command:?}): {e}"))?;
        // Success is silent; an error is said.
        if answer.is_empty() { Ok(answer) } else { Err(format!("HAProxy answered {command:?} with: {answer}")) }
    }

    async fn switch(&self, old: &str, new: &str) -> Result<(String, String), String> {
        let body = format!(r#"{{"leader": "{old}", "candidate": "{new}"}}"#);
        let port = self.layout.nodes.iter().map(|n| n.rest).next().ok_or("no node")?;
        let (status, answer) = rest::request(port, "POST", "/switchover", Some(&body)).await?;
        if status != 200 {
            return Err(format!("switchover {old} -> {new}: Patroni answered {status}: {}", answer.trim()));
        }
        Ok((old.to_string(), new.to_string()))
    }

    /// A failover: the leader's Patroni and Postgres killed (SIGKILL), as a
    /// machine that dies; another node takes over once the leader key
    /// expires. The node stays down until [`HaCluster::restart_node`].
    pub async fn kill_leader(&mut self) -> Result<String, String> {
        let old = self.leader().await.ok_or("failover: the cluster has no leader")?;
        let i = (0..self.layout.nodes.len()).find(|&i| Layout::node_name(i) == old).ok_or("unknown leader")?;
        let data = self.layout.data_dir(i);
        if let Some(mut child) = self.nodes.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = postmaster_pid(&data) {
            process::signal(pid, process::SIGKILL);
        }
        Ok(old)
    }

    /// Wait (at most `bound`) until a node other than `old` leads: its name.
    pub async fn wait_for_leader_other_than(&self, old: &str, bound: Duration) -> Result<String, String> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(new) = self.leader().await.filter(|l| l != old) {
                return Ok(new);
            }
            if Instant::now() >= deadline {
                return Err(format!("no node took over from {old} within {bound:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Start a killed node's Patroni again (it rejoins as a standby).
    pub fn restart_node(&mut self, name: &str) -> Result<(), String> {
        let i = (0..self.layout.nodes.len()).find(|&i| Layout::node_name(i) == name).ok_or("unknown node")?;
        if self.nodes.get(i).is_some_and(Option::is_some) {
            return Ok(());
        }
        let yaml = vec![self.layout.yaml_path(i).display().to_string()];
        let child = self.spawn(1, &yaml, &self.layout.node_dir(i).join("patroni-restart.log"))?;
        if let Some(slot) = self.nodes.get_mut(i) {
            *slot = Some(child);
        }
        Ok(())
    }

    /// Take everything down: the Patroni nodes (each stops its Postgres),
    /// any postmaster left, HAProxy, etcd; then whatever still names this
    /// cluster; then its directory.
    pub fn stop(&mut self) {
        for child in self.nodes.iter_mut().filter_map(Option::take).collect::<Vec<_>>().iter_mut() {
            stop_child(child, process::SIGTERM);
        }
        for i in 0..self.layout.nodes.len() {
            if let Some(pid) = postmaster_pid(&self.layout.data_dir(i)) {
                process::signal(pid, process::SIGQUIT);
            }
        }
        for child in [self.proxy.take(), self.etcd.take()].iter_mut().flatten() {
            stop_child(child, process::SIGTERM);
        }
        let deadline = Instant::now() + STOP_BOUND;
        loop {
            let left = crate::db::leftover::processes_naming(&self.layout.scope);
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                for pid in left {
                    process::signal(pid, process::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            tracing::warn!(error = %e, "the HA cluster's directory could not be removed");
        }
    }
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        if self.dir.is_some() {
            self.stop();
        }
    }
}
