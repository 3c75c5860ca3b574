//! The Run streams of one run: start every agent at once, keep each one's
//! lease alive with a heartbeat a second, fold intervals as they arrive, and
//! notice a lost agent.
//!
//! An agent is lost when its stream breaks (a killed process: at once), ends
//! without a result, or stays silent for [`SILENCE`] (a hung process or a cut
//! link that TCP has not noticed). By policy the run then goes on with the
//! other agents or stops them (they drain and report).

use std::time::{Duration, Instant};

use loadgen_common::tally::Finish;
use tokio::sync::{mpsc, watch};

use super::abort::Judge;
use super::completions::ClusterTracker;
use super::live::Live;
use crate::agents::AgentLink;
use crate::agents::run::{AgentEvent, Controls, Events, FaultReport};
use crate::error::CoordinatorError;
use crate::model::{Aborted, DbSample};
use crate::notice::{Notice, Observer};
use crate::plan::OnAgentLoss;

pub use crate::agents::run::start_all;

/// An agent silent for this long is lost. Progress comes every second.
pub const SILENCE: Duration = Duration::from_secs(5);

/// How one agent's run ended, as the coordinator saw it (what it streamed
/// is in [`Live`]).
#[derive(Debug, Clone)]
pub enum Followed {
    /// The agent sent its finish.
    Finished(Finish),
    /// The agent was lost.
    Lost { at: Duration, reason: String },
}

/// Following a run.
pub struct Follow<'a> {
    pub links: &'a [AgentLink],
    pub policy: OnAgentLoss,
    /// The common start instant.
    pub started: Instant,
    /// Bound on the whole wait.
    pub bound: Duration,
    /// The database sampler's latest sample, for the live view.
    pub db: Option<watch::Receiver<Option<DbSample>>>,
    /// Cluster tracking: where the agents' start reports go.
    pub tracker: Option<&'a ClusterTracker>,
    /// Load stages: the plan, for the live view's offered load.
    pub load: Option<&'a loadgen_common::load::Load>,
    /// Where agents' reports of the faults they applied go (the injector).
    pub fault_done: Option<mpsc::UnboundedSender<FaultReport>>,
    /// `--abort-on-fail`: the live judge of the gates.
    pub judge: Option<&'a mut Judge>,
    pub obs: &'a dyn Observer,
}

/// A gate was lost: say so and stop every agent still running.
fn abort(lost: &Aborted, open: impl Iterator<Item = usize>, controls: &Controls, obs: &dyn Observer) {
    let why = format!("--abort-on-fail: the {} gate was lost at {:.1}s ({})", lost.gate, lost.at_s, lost.detail);
    obs.notice(&Notice::Warning(format!("{why}; stopping every agent")));
    tracing::info!(gate = %lost.gate, at_s = lost.at_s, "aborting the run");
    for j in open {
        controls.stop(j, &why);
    }
}

/// Show the live view: the figures so far, the database's latest sample and
/// the load offered at this moment.
fn show(f: &Follow<'_>, live: &Live) {
    let sample = f.db.as_ref().and_then(|rx| rx.borrow().clone());
    let mut frame = live.frame(sample.as_ref());
    // While the plan lasts (the drain after it offers nothing).
    let now = std::time::Duration::from_secs_f64(frame.elapsed_s.max(0.0));
    frame.offered_now = f.load.filter(|l| now <= l.plan.duration()).map(|l| (l.plan.value_at(now), l.is_open()));
    frame.offered = frame.offered_now.filter(|_| f.load.is_some_and(|l| l.staged));
    f.obs.notice(&Notice::Live(&frame));
}

/// Agent `i` went silent or its stream broke: say so, count it lost, and
/// stop the others (`--on-agent-loss abort`) or judge the loss
/// (`--abort-on-fail`).
fn lose(
    f: &mut Follow<'_>,
    i: usize,
    reason: String,
    outcome: &mut [Option<Followed>],
    live: &mut Live,
    controls: &Controls,
) {
    let links = f.links;
    let address = |i: usize| links.get(i).map_or("?", |l| l.address.as_str());
    let n = outcome.len();
    let at = f.started.elapsed();
    let stopping = f.policy == OnAgentLoss::Abort;
    f.obs.notice(&Notice::AgentLost {
        index: i,
        address: address(i),
        at_s: at.as_secs_f64(),
        reason: &reason,
        stopping_others: stopping,
    });
    tracing::warn!(agent = %address(i), reason, "agent lost");
    live.lost(i);
    if let Some(t) = f.tracker {
        t.forget(i);
    }
    let judged = f.judge.as_deref_mut().and_then(|j| j.agent_lost(i, &reason, at.as_secs_f64())).cloned();
    outcome[i] = Some(Followed::Lost { at, reason });
    if stopping {
        for j in (0..n).filter(|&j| outcome[j].is_none()) {
            controls.stop(j, &format!("agent {} was lost", address(i)));
        }
    } else if let Some(lost) = judged {
        abort(&lost, (0..n).filter(|&j| outcome[j].is_none()), controls, f.obs);
    }
}

/// Follow every agent until each has sent its finish or is lost, folding
/// intervals into `live` and showing it once a second.
pub async fn follow(
    mut f: Follow<'_>,
    mut rx: Events,
    controls: &Controls,
    live: &mut Live,
) -> Result<Vec<Followed>, CoordinatorError> {
    let n = f.links.len();
    let links = f.links;
    let address = |i: usize| links.get(i).map_or("?", |l| l.address.as_str());
    let mut outcome: Vec<Option<Followed>> = vec![None; n];
    let mut last_heard = vec![Instant::now().max(f.started); n];
    let deadline = tokio::time::Instant::from_std(f.started + f.bound);
    // Tick a little after the agents' own second boundaries, so each frame
    // includes the interval that just ended.
    let first = tokio::time::Instant::from_std(f.started) + Duration::from_millis(1300);
    let mut ticker = tokio::time::interval_at(first, Duration::from_secs(1));
    while outcome.iter().any(Option::is_none) {
        let mut newly_lost: Option<(usize, String)> = None;
        tokio::select! {
            msg = rx.recv() => {
                let Some((i, ev)) = msg else { break };
                if let Some(t) = last_heard.get_mut(i) {
                    *t = Instant::now();
                }
                let open = outcome.get(i).is_some_and(Option::is_none);
                let bad = |e: String| CoordinatorError::agent(address(i), format!("bad progress: {e}"));
                match ev {
                    AgentEvent::Progress(p) => live.fold(i, p.map_err(bad)?).map_err(|e| bad(e.to_string()))?,
                    AgentEvent::Started(ids) => {
                        if let Some(t) = f.tracker.filter(|_| open) {
                            t.started(i, ids);
                        }
                    }
                    AgentEvent::FaultDone { id, result } => {
                        if let Some(tx) = &f.fault_done {
                            let _ = tx.send((i, id, result));
                        }
                    }
                    AgentEvent::Finished(finish) => {
                        if let Some(t) = f.tracker {
                            t.forget(i);
                        }
                        let got = live.agents.get(i).map_or(0, |a| a.intervals);
                        if finish.progress_messages != got {
                            tracing::warn!(agent = %address(i), sent = finish.progress_messages, got, "progress messages missing");
                        }
                        outcome[i] = Some(Followed::Finished(finish));
                    }
                    AgentEvent::Broke(why) if open => newly_lost = Some((i, format!("stream broke: {why}"))),
                    AgentEvent::Ended if open => newly_lost = Some((i, "stream ended without a result".into())),
                    _ => {}
                }
            }
            _ = ticker.tick() => {
                show(&f, live);
                if let Some(judge) = f.judge.as_deref_mut() {
                    for h in live.take_closed() {
                        judge.second(&h);
                    }
                    if let Some(lost) = judge.judge(&live.total(), f.started.elapsed().as_secs_f64()) {
                        abort(lost, (0..n).filter(|&j| outcome[j].is_none()), controls, f.obs);
                    }
                }
                let now = Instant::now();
                if now > f.started {
                    newly_lost = (0..n).find(|&i| outcome[i].is_none() && now.duration_since(last_heard[i]) > SILENCE)
                        .map(|i| (i, format!("silent for {:.1}s", now.duration_since(last_heard[i]).as_secs_f64())));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Err(CoordinatorError::Timeout(f.bound)),
        }
        if let Some((i, reason)) = newly_lost {
            lose(&mut f, i, reason, &mut outcome, live, controls);
        }
    }
    show(&f, live);
    outcome
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or_else(|| CoordinatorError::agent(address(i), "no result")))
        .collect()
}
