//! `--local N`: agent processes on loopback, owned by the coordinator.
//!
//! Each agent is started with `--listen 127.0.0.1:0` and the database URL in
//! its environment (never on its command line, where `ps` would show it);
//! the coordinator learns the port from the agent's first stdout line. Agents
//! run in their own process group, so a Ctrl-C at the terminal reaches the
//! coordinator only and it can release them in order; a parent-death signal
//! stops them if the coordinator itself is killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use loadgen_common::process;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::CoordinatorError;
use crate::plan::PlanError;

/// How long an agent may take to print its listen address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an agent may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How local agents are started.
#[derive(Debug)]
pub struct Launch<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub log: &'a str,
    pub pool_max: Option<u32>,
    pub token: &'a str,
    /// Extra environment (A/B variants).
    pub env: &'a [(String, String)],
    /// The agents started with `--clock-control` (a clock-skew fault shifts them).
    pub clock_control: &'a [u32],
}

/// The local agent processes of one run.
#[derive(Debug, Default)]
pub struct LocalAgents {
    agents: Vec<(String, Child)>,
}

/// The agent binary: the explicit path, or `agent` next to this executable
/// (or one directory up, where test harnesses live).
pub fn find_agent_binary(explicit: Option<&Path>) -> Result<PathBuf, PlanError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(PlanError::Invalid(format!("agent binary {} does not exist", p.display())))
        };
    }
    let exe = std::env::current_exe().map_err(|e| PlanError::Invalid(format!("cannot find this executable: {e}")))?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("agent");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(PlanError::Invalid(
        "cannot find the `agent` binary next to the coordinator; build both (cargo build --release) or pass --agent-bin".into(),
    ))
}

impl LocalAgents {
    /// Start `n` agents and wait until each has printed its address.
    pub async fn spawn(n: u32, launch: &Launch<'_>) -> Result<Self, CoordinatorError> {
        let mut agents = LocalAgents::default();
        for i in 0..n {
            match spawn_one(i, launch).await {
                Ok(a) => agents.agents.push(a),
                Err(e) => {
                    agents.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(agents)
    }

    /// The agents' process ids, in index order (`None`: already exited).
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.agents.iter().map(|(_, c)| c.id()).collect()
    }

    /// The agents' addresses, in index order.
    pub fn addresses(&self) -> Vec<String> {
        self.agents.iter().map(|(a, _)| a.clone()).collect()
    }

    /// SIGTERM every agent, wait (bounded), kill what is left; remove the
    /// clock control files a killed agent could not.
    pub async fn stop(&mut self) {
        let pids: Vec<u32> = self.pids().into_iter().flatten().collect();
        for (_, child) in &self.agents {
            if let Some(pid) = child.id() {
                process::signal(pid, process::SIGTERM);
            }
        }
        for (addr, child) in &mut self.agents {
            match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(agent = %addr, "local agent did not exit within {STOP_TIMEOUT:?}; killing it");
                    let _ = child.kill().await;
                }
            }
        }
        self.agents.clear();
        for pid in pids {
            let _ = std::fs::remove_dir_all(loadgen_common::clock::control_dir(pid));
        }
    }
}

async fn spawn_one(index: u32, launch: &Launch<'_>) -> Result<(String, Child), CoordinatorError> {
    let Launch { bin, database_url, log, pool_max, token, env, .. } = *launch;
    let clock_control = launch.clock_control.contains(&index);
    let mut std_cmd = std::process::Command::new(bin);
    std_cmd.envs(env.iter().map(|(k, v)| (k, v)));
    std_cmd.args(["--listen", "127.0.0.1:0"]);
    if clock_control {
        std_cmd.arg("--clock-control");
    }
    if let Some(n) = pool_max {
        std_cmd.args(["--pool-max", &n.to_string()]);
    }
    std_cmd
        .env("DATABASE_URL", database_url)
        .env("LOADGEN_TOKEN", token)
        .env("AGENT_LOG", log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    {
        use std::os::unix::process::CommandExt;
        std_cmd.process_group(0);
    }
    process::die_with_parent(&mut std_cmd, process::SIGTERM);
    let mut cmd = Command::from(std_cmd);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| CoordinatorError::Local(format!("cannot start {}: {e}", bin.display())))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CoordinatorError::Local("agent pipes missing".into()));
    };
    // Forward the agent's log lines to our stderr, tagged with its index.
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("agent-{index} | {line}");
        }
    });
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(START_TIMEOUT, lines.next_line()).await;
    let address = match first {
        Ok(Ok(Some(line))) => line.strip_prefix("listening on ").map(str::to_string),
        Ok(_) => {
            let status = child.wait().await.map_or("its status unknown".into(), |s| s.to_string());
            return Err(CoordinatorError::Local(format!(
                "agent {index} exited before it was ready ({status}; see its log above)"
            )));
        }
        Err(_) => None,
    };
    let Some(address) = address else {
        let _ = child.kill().await;
        return Err(CoordinatorError::Local(format!(
            "agent {index} did not report its address within {START_TIMEOUT:?} (see its log above)"
        )));
    };
    // Keep draining stdout so the agent never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    tracing::info!(index, %address, "local agent started");
    Ok((address, child))
}
