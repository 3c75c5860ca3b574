//! Applying a schedule during a run: each fault at its time, undone after
//! its duration, with the exact times it began and ended. Every fault that
//! holds something (a paused server, a frozen agent) is undone by a guard
//! too, so an interrupted run never leaves a process stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::RunDb;
use loadgen_common::process::{self, SIGCONT, SIGKILL, SIGSTOP};
use loadgen_common::proto;
use sqlx::Row;

use crate::db::embedded::{EmbeddedPostgres, Shutdown};
use crate::model::FaultEvent;
use crate::notice::{Notice, Observer};
use crate::plan::faults::{FaultKind, FaultSpec, Schedule};

/// What the faults can reach in this run.
pub struct Targets<'a> {
    /// The run's schema (its pool reaches the database); none on SQLite.
    pub provider: Option<Arc<RunDb>>,
    /// The throwaway Postgres, when this coordinator started it.
    pub embedded: Option<&'a mut EmbeddedPostgres>,
    /// Local agents' process ids, by index.
    pub agent_pids: Vec<Option<u32>>,
    /// Every agent's control stream (agent faults travel on it).
    pub routes: Vec<tokio::sync::mpsc::UnboundedSender<proto::RunControl>>,
    /// Each agent's share of the load (its slice of the budget or rate).
    pub load_shares: Vec<f64>,
    /// Agents' reports of the faults they applied (runtime restarts).
    pub fault_done: tokio::sync::mpsc::UnboundedReceiver<(usize, proto::FaultDone)>,
}

/// Bound on the terminate-backends queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on an agent's runtime restart beyond its downtime (a second's
/// grace, a bounded shutdown, connecting and starting a fresh runtime).
const RESTART_TIMEOUT: Duration = Duration::from_secs(30);

/// SIGCONT for whatever was stopped, when dropped.
struct Resume(Vec<u32>);

impl Drop for Resume {
    fn drop(&mut self) {
        for pid in &self.0 {
            process::signal(*pid, SIGCONT);
        }
    }
}

/// Run `schedule` from the common start instant `started`; returns what
/// happened, fault by fault.
pub async fn run(schedule: &Schedule, started: Instant, mut t: Targets<'_>, obs: &dyn Observer) -> Vec<FaultEvent> {
    let mut events = Vec::with_capacity(schedule.faults.len());
    for (id, f) in schedule.faults.iter().enumerate() {
        tokio::time::sleep_until(tokio::time::Instant::from_std(started + f.at)).await;
        let at_s = started.elapsed().as_secs_f64();
        obs.notice(&Notice::Note(format!("fault: {} on {} at {at_s:.1}s", f.kind.as_str(), f.target())));
        let result = apply(id, f, &mut t).await;
        let load_kept = (f.kind == FaultKind::KillAgent && result.is_ok()).then(|| {
            let gone = t.load_shares.get(f.agent.unwrap_or(0) as usize).copied().unwrap_or(0.0);
            (1.0 - gone).max(0.0)
        });
        let end_s = started.elapsed().as_secs_f64();
        let stuck = matches!(result, Err(Failure::NotUndone(_)));
        let (detail, error) = match result {
            Ok(d) => (d, None),
            Err(Failure::NotApplied(e)) => {
                obs.notice(&Notice::Warning(format!("fault {} failed: {e}", f.kind.as_str())));
                (String::new(), Some(e))
            }
            Err(Failure::NotUndone(e)) => {
                let e = format!("{e}; the run was stopped (the fault could not be undone)");
                obs.notice(&Notice::Warning(format!(
                    "fault {} could not be undone: stopping the run ({e})",
                    f.kind.as_str()
                )));
                (String::new(), Some(e))
            }
        };
        tracing::info!(kind = f.kind.as_str(), at_s, end_s, detail, "fault applied");
        events.push(FaultEvent {
            kind: f.kind.as_str().into(),
            target: f.target(),
            at_s,
            end_s,
            detail,
            error,
            load_kept,
        });
        if stuck {
            // Load against a broken system measures nothing: every agent
            // stops starting and drains; the faults gate fails with the reason.
            let reason = format!("fault {} could not be undone", f.kind.as_str());
            let stop = proto::RunControl {
                control: Some(proto::run_control::Control::Stop(proto::Stop { reason: reason.clone() })),
            };
            for r in &t.routes {
                let _ = r.send(stop.clone());
            }
            break;
        }
    }
    events
}

/// Why a fault failed.
enum Failure {
    /// It did not happen (the run went on as before).
    NotApplied(String),
    /// It happened and could not be undone (the server did not come back).
    NotUndone(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::NotApplied(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure::NotApplied(e.to_string())
    }
}

async fn apply(id: usize, f: &FaultSpec, t: &mut Targets<'_>) -> Result<String, Failure> {
    match f.kind {
        FaultKind::TerminateBackends => {
            let db = t.provider.as_deref().ok_or("no Postgres to terminate backends of")?;
            Ok(terminate(db, f.share.unwrap_or(1.0)).await?)
        }
        FaultKind::RestartDb => {
            let pg = t.embedded.as_deref_mut().ok_or("no throwaway Postgres to restart")?;
            pg.restart(f.length(), Shutdown::Immediate)
                .await
                .map(|()| format!("crashed (every backend at once), down {}, started again", fmt(f.length())))
                .map_err(|e| Failure::NotUndone(format!("Postgres did not come back: {e}")))
        }
        FaultKind::PauseDb => {
            let pg = t.embedded.as_deref().ok_or("no throwaway Postgres to pause")?;
            let postmaster = pg.pid().ok_or("the throwaway Postgres is not running")?;
            let mut pids = children(postmaster);
            pids.push(postmaster);
            for pid in &pids {
                process::signal(*pid, SIGSTOP);
            }
            // The postmaster resumes first (it is last in the list: reverse).
            let resume = Resume(pids.iter().rev().copied().collect());
            tokio::time::sleep(f.length()).await;
            let n = resume.0.len();
            drop(resume);
            Ok(format!("{n} server processes stopped for {}", fmt(f.length())))
        }
        FaultKind::KillAgent => {
            let pid = agent_pid(t, f)?;
            if process::signal(pid, SIGKILL) {
                Ok(format!("pid {pid} killed"))
            } else {
                Err(format!("pid {pid} gone").into())
            }
        }
        FaultKind::DbLatency | FaultKind::DbPartition => {
            let (kind, delay) = match f.kind {
                FaultKind::DbLatency => (proto::AgentFaultKind::Latency, f.delay.unwrap_or_default()),
                _ => (proto::AgentFaultKind::Partition, Duration::ZERO),
            };
            let msg = fault_message(proto::AgentFault {
                kind: kind as i32,
                duration_ms: millis(f.length()),
                delay_us: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
                ..Default::default()
            });
            let targets: Vec<usize> = match f.agent {
                Some(i) => vec![i as usize],
                None => (0..t.routes.len()).collect(),
            };
            let sent =
                targets.iter().filter(|&&i| t.routes.get(i).is_some_and(|r| r.send(msg.clone()).is_ok())).count();
            if sent == 0 {
                return Err("no agent took the fault (its stream is closed)".into());
            }
            // The agents undo it after the duration; the fault lasts that long.
            tokio::time::sleep(f.length()).await;
            Ok(match f.kind {
                FaultKind::DbLatency => format!("{sent} agent(s): +{} each way for {}", fmt(delay), fmt(f.length())),
                _ => format!("{sent} agent(s): no database traffic for {}", fmt(f.length())),
            })
        }
        FaultKind::RestartRuntime => {
            let agent = f.agent.unwrap_or(0) as usize;
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            let msg = fault_message(proto::AgentFault {
                kind: proto::AgentFaultKind::RestartRuntime as i32,
                duration_ms: millis(f.length()),
                runtime: f.runtime.unwrap_or(0),
                id,
                ..Default::default()
            });
            if t.routes.get(agent).is_none_or(|r| r.send(msg).is_err()) {
                return Err(
                    format!("agent {agent} did not take the fault (no such agent, or its stream is closed)").into()
                );
            }
            // The agent answers when the fresh runtime runs (or it failed).
            let wait = async {
                while let Some((from, done)) = t.fault_done.recv().await {
                    if from == agent && done.id == id {
                        return Some(done);
                    }
                }
                None
            };
            match tokio::time::timeout(f.length() + RESTART_TIMEOUT, wait).await {
                Ok(Some(done)) if done.error.is_empty() => Ok(format!("agent {agent}: {}", done.detail)),
                Ok(Some(done)) => Err(format!("agent {agent}: {}", done.error).into()),
                Ok(None) => Err(format!("agent {agent} ended before it reported the restart").into()),
                Err(_) => Err(format!(
                    "agent {agent} did not report the restart within {}",
                    fmt(f.length() + RESTART_TIMEOUT)
                )
                .into()),
            }
        }
        FaultKind::FreezeAgent => {
            let pid = agent_pid(t, f)?;
            if !process::signal(pid, SIGSTOP) {
                return Err(format!("pid {pid} gone").into());
            }
            let resume = Resume(vec![pid]);
            tokio::time::sleep(f.length()).await;
            drop(resume);
            Ok(format!("pid {pid} stopped for {}", fmt(f.length())))
        }
    }
}

fn fault_message(fault: proto::AgentFault) -> proto::RunControl {
    proto::RunControl { control: Some(proto::run_control::Control::Fault(fault)) }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn fmt(d: Duration) -> String {
    loadgen_common::units::format_duration(d)
}

fn agent_pid(t: &Targets<'_>, f: &FaultSpec) -> Result<u32, Failure> {
    let i = f.agent.unwrap_or(0) as usize;
    t.agent_pids.get(i).copied().flatten().ok_or_else(|| format!("agent {i} has no process here").into())
}

/// Terminate `share` of the client backends of the run's database (other
/// than the one asking, in pid order), in one statement on one connection so
/// the coordinator never terminates the connection it asks on.
async fn terminate(provider: &RunDb, share: f64) -> Result<String, String> {
    let kill = sqlx::query(
        "WITH b AS (SELECT pid, row_number() OVER (ORDER BY pid) AS n, count(*) OVER () AS total \
                    FROM pg_stat_activity WHERE datname = current_database() \
                    AND backend_type = 'client backend' AND pid <> pg_backend_pid()) \
         SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)), coalesce(max(total), 0) \
         FROM b WHERE n <= ceil(total * $1::float8)",
    )
    .bind(share)
    .fetch_one(provider.pool());
    let row = tokio::time::timeout(QUERY_TIMEOUT, kill)
        .await
        .map_err(|_| "terminating backends took too long".to_string())?
        .map_err(|e| e.to_string())?;
    let done: i64 = row.try_get(0).map_err(|e| e.to_string())?;
    let total: i64 = row.try_get(1).map_err(|e| e.to_string())?;
    Ok(format!("{done} of {total} backends terminated"))
}

/// Process ids whose parent is `parent` (the postmaster's backends).
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
                // Fields after the command name: state, ppid, ...
                stat.rfind(')')
                    .and_then(|i| stat.get(i + 2..))
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}
