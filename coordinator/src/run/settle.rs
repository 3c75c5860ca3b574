//! After an agent is lost: wait (bounded) until the orchestrations it started
//! are terminal (the other runtimes finish them: the durability the provider
//! promises), then say what became of them.

use std::time::{Duration, Instant};

use crate::db::RunDb;

use super::stream::Followed;
use crate::agents::AgentLink;
use crate::db;
use crate::error::CoordinatorError;
use crate::model::{Counts, LostAgent};
use crate::notice::{Notice, Observer};

/// A lost agent as the stream left it.
pub struct Orphaned<'a> {
    pub index: usize,
    pub at: Duration,
    pub reason: &'a str,
    /// What it reported until then, and its last in-flight count.
    pub counts: Counts,
    pub in_flight: u64,
}

/// The lost agents among `followed`, with what they reported.
pub fn orphaned<'a>(followed: &'a [Followed], reported: impl Fn(usize) -> (Counts, u64)) -> Vec<Orphaned<'a>> {
    followed
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Followed::Lost { at, reason } => {
                let (counts, in_flight) = reported(i);
                Some(Orphaned { index: i, at: *at, reason, counts, in_flight })
            }
            Followed::Finished(_) => None,
        })
        .collect()
}

/// The lost agents when their store went with them (SQLite): what they
/// reported, and nothing the store could add.
pub fn unsettled(links: &[AgentLink], lost: &[Orphaned<'_>]) -> Vec<LostAgent> {
    lost.iter().map(|l| reported(links, l)).collect()
}

/// What a lost agent itself told before it was lost.
fn reported(links: &[AgentLink], l: &Orphaned<'_>) -> LostAgent {
    LostAgent {
        index: l.index as u32,
        address: links.get(l.index).map(|a| a.address.clone()).unwrap_or_default(),
        at_s: l.at.as_secs_f64(),
        reason: l.reason.to_string(),
        last_reported: l.counts.clone(),
        in_flight_at_loss: l.in_flight,
        ..Default::default()
    }
}

/// Wait until the lost agents' instances are terminal (at most `bound`),
/// then describe what became of them.
pub async fn settle(
    provider: &RunDb,
    run_id: &str,
    links: &[AgentLink],
    lost: &[Orphaned<'_>],
    started_at: chrono::DateTime<chrono::Utc>,
    bound: Duration,
    obs: &dyn Observer,
) -> Result<Vec<LostAgent>, CoordinatorError> {
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + bound;
    loop {
        let mut open = 0;
        for l in lost {
            open += db::agent_instances(provider, run_id, l.index as u32, started_at).await?.3;
        }
        if open == 0 || Instant::now() >= deadline {
            break;
        }
        obs.notice(&Notice::WaitingForOrphans { open });
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut out = Vec::with_capacity(lost.len());
    for l in lost {
        let lost_at = started_at + chrono::TimeDelta::from_std(l.at).unwrap_or_default();
        let (total, completed, failed, running, after) =
            db::agent_instances(provider, run_id, l.index as u32, lost_at).await?;
        out.push(LostAgent {
            instances_in_db: total,
            completed_in_db: completed,
            failed_in_db: failed,
            still_running: running,
            completed_by_others: after,
            planned: false,
            ..reported(links, l)
        });
    }
    Ok(out)
}
