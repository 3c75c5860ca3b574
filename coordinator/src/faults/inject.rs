//! Applying a schedule during a run: each fault at its time, undone after
//! its duration, with the exact times it began and ended. Every fault that
//! holds something (a paused server, a frozen agent) is undone by a guard
//! too, so an interrupted run never leaves a process stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use duroxide_pg::PostgresProvider;
use loadgen_common::process::{self, SIGCONT, SIGKILL, SIGSTOP};
use loadgen_common::proto;
use sqlx::Row;

use crate::db::embedded::{EmbeddedPostgres, Shutdown};
use crate::model::FaultEvent;
use crate::notice::{Notice, Observer};
use crate::plan::faults::{FaultKind, FaultSpec, Schedule};

/// What the faults can reach in this run.
pub struct Targets<'a> {
    /// The run's schema owner (its pool reaches the database).
    pub provider: Arc<PostgresProvider>,
    /// The throwaway Postgres, when this coordinator started it.
    pub embedded: Option<&'a mut EmbeddedPostgres>,
    /// Local agents' process ids, by index.
    pub agent_pids: Vec<Option<u32>>,
    /// Every agent's control stream (relay faults travel on it).
    pub routes: Vec<crate::run::completions::Route>,
}

/// Bound on the terminate-backends queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

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
    for f in &schedule.faults {
        tokio::time::sleep_until(tokio::time::Instant::from_std(started + f.at)).await;
        let at_s = started.elapsed().as_secs_f64();
        obs.notice(&Notice::Note(format!("fault: {} on {} at {at_s:.1}s", f.kind.as_str(), f.target())));
        let result = apply(f, &mut t).await;
        let end_s = started.elapsed().as_secs_f64();
        let (detail, error) = match result {
            Ok(d) => (d, None),
            Err(e) => {
                obs.notice(&Notice::Warning(format!("fault {} failed: {e}", f.kind.as_str())));
                (String::new(), Some(e))
            }
        };
        tracing::info!(kind = f.kind.as_str(), at_s, end_s, detail, "fault applied");
        events.push(FaultEvent { kind: f.kind.as_str().into(), target: f.target(), at_s, end_s, detail, error });
    }
    events
}

async fn apply(f: &FaultSpec, t: &mut Targets<'_>) -> Result<String, String> {
    match f.kind {
        FaultKind::TerminateBackends => terminate(&t.provider, f.share.unwrap_or(1.0)).await,
        FaultKind::RestartDb => {
            let pg = t.embedded.as_deref_mut().ok_or("no throwaway Postgres to restart")?;
            pg.restart(f.length(), Shutdown::Immediate)
                .await
                .map(|()| format!("crashed (every backend at once), down {}, started again", fmt(f.length())))
                .map_err(|e| format!("Postgres did not come back: {e}"))
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
            if process::signal(pid, SIGKILL) { Ok(format!("pid {pid} killed")) } else { Err(format!("pid {pid} gone")) }
        }
        FaultKind::DbLatency | FaultKind::DbPartition => {
            let (kind, delay) = match f.kind {
                FaultKind::DbLatency => (proto::RelayFaultKind::Latency, f.delay.unwrap_or_default()),
                _ => (proto::RelayFaultKind::Partition, Duration::ZERO),
            };
            let msg = proto::RunControl {
                control: Some(proto::run_control::Control::Fault(proto::RelayFault {
                    kind: kind as i32,
                    duration_ms: u64::try_from(f.length().as_millis()).unwrap_or(u64::MAX),
                    delay_us: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
                })),
            };
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
        FaultKind::FreezeAgent => {
            let pid = agent_pid(t, f)?;
            if !process::signal(pid, SIGSTOP) {
                return Err(format!("pid {pid} gone"));
            }
            let resume = Resume(vec![pid]);
            tokio::time::sleep(f.length()).await;
            drop(resume);
            Ok(format!("pid {pid} stopped for {}", fmt(f.length())))
        }
    }
}

fn fmt(d: Duration) -> String {
    loadgen_common::units::format_duration(d)
}

fn agent_pid(t: &Targets<'_>, f: &FaultSpec) -> Result<u32, String> {
    let i = f.agent.unwrap_or(0) as usize;
    t.agent_pids.get(i).copied().flatten().ok_or_else(|| format!("agent {i} has no process here"))
}

/// Terminate `share` of the client backends of the run's database (other
/// than the one asking, in pid order), in one statement on one connection so
/// the coordinator never terminates the connection it asks on.
async fn terminate(provider: &PostgresProvider, share: f64) -> Result<String, String> {
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
