//! The Run streams of one run: start every agent at once, keep each one's
//! lease alive with a heartbeat a second, fold intervals as they arrive, and
//! notice a lost agent.
//!
//! An agent is lost when its stream breaks (a killed process: at once), ends
//! without a result, or stays silent for [`SILENCE`] (a hung process or a cut
//! link that TCP has not noticed). By policy the run then goes on with the
//! other agents or stops them (they drain and report).

use std::time::{Duration, Instant};

use loadgen_common::proto::{self, run_control, run_event};
use loadgen_common::tally::{Finish, Interval};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use super::completions::{ClusterTracker, Route};
use super::live::Live;
use crate::agents::AgentLink;
use crate::error::CoordinatorError;
use crate::model::DbSample;
use crate::notice::{Notice, Observer};
use crate::plan::OnAgentLoss;

/// An agent silent for this long is lost. Progress comes every second.
pub const SILENCE: Duration = Duration::from_secs(5);
/// Heartbeat interval on each control stream (the agents' lease is 3 s).
const HEARTBEAT: Duration = Duration::from_secs(1);

type EventStream = tonic::Streaming<proto::RunEvent>;

/// The control side of every agent's Run call. Heartbeats go on until
/// [`Controls::close`] (after Release), so agents keep their runtimes up while
/// the coordinator still needs them (for another agent's orphans).
///
/// The streams are unbounded: what goes on them is a heartbeat a second, a
/// stop, and completions, which are bounded by the instances in flight.
#[derive(Debug)]
pub struct Controls {
    senders: Vec<Route>,
    heartbeats: CancellationToken,
}

impl Controls {
    /// Ask agent `i` to stop starting orchestrations and drain.
    pub async fn stop(&self, i: usize, reason: &str) {
        if let Some(tx) = self.senders.get(i) {
            let msg = proto::RunControl {
                control: Some(run_control::Control::Stop(proto::Stop { reason: reason.to_string() })),
            };
            let _ = tx.send(msg);
        }
    }

    /// Where completions for each agent go (cluster tracking).
    pub fn routes(&self) -> Vec<Route> {
        self.senders.clone()
    }

    /// End the heartbeats and close every control stream.
    pub fn close(self) {
        self.heartbeats.cancel();
    }
}

impl Drop for Controls {
    fn drop(&mut self) {
        self.heartbeats.cancel();
    }
}

/// Open Run on every agent with the same start delay.
pub async fn start_all(
    links: &[AgentLink],
    run_id: &str,
    start_delay: Duration,
) -> Result<(Controls, Vec<EventStream>), CoordinatorError> {
    start_all_tracking(links, run_id, start_delay, false).await
}

/// [`start_all`], telling the agents to track their completions through
/// duroxide's client API when `client_tracking`.
pub async fn start_all_tracking(
    links: &[AgentLink],
    run_id: &str,
    start_delay: Duration,
    client_tracking: bool,
) -> Result<(Controls, Vec<EventStream>), CoordinatorError> {
    let heartbeats = CancellationToken::new();
    let mut senders = Vec::with_capacity(links.len());
    let mut set = tokio::task::JoinSet::new();
    for (i, l) in links.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        let start = proto::RunRequest {
            run_id: run_id.to_string(),
            start_delay_ms: u64::try_from(start_delay.as_millis()).unwrap_or(u64::MAX),
            client_tracking,
        };
        let _ = tx.send(proto::RunControl { control: Some(run_control::Control::Start(start)) });
        spawn_heartbeat(tx.clone(), heartbeats.clone());
        senders.push(tx);
        let mut client = l.client.clone();
        let address = l.address.clone();
        set.spawn(async move {
            let r = client
                .run(UnboundedReceiverStream::new(rx))
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| CoordinatorError::agent(&address, format!("run refused: {}", s.message())));
            (i, r)
        });
    }
    let controls = Controls { senders, heartbeats };
    let mut streams: Vec<Option<EventStream>> = (0..links.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| CoordinatorError::Local(e.to_string()))?;
        streams[i] = Some(r?);
    }
    Ok((controls, streams.into_iter().flatten().collect()))
}

fn spawn_heartbeat(tx: Route, until: CancellationToken) {
    tokio::spawn(async move {
        let mut seq = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = until.cancelled() => return,
            }
            seq += 1;
            let beat = proto::RunControl { control: Some(run_control::Control::Heartbeat(proto::Heartbeat { seq })) };
            if tx.send(beat).is_err() {
                return;
            }
        }
    });
}

/// How one agent's run ended, as the coordinator saw it (what it streamed
/// is in [`Live`]).
#[derive(Debug, Clone)]
pub enum Followed {
    /// The agent sent its finish.
    Finished(Finish),
    /// The agent was lost.
    Lost { at: Duration, reason: String },
}

enum StreamEvent {
    Event(Box<proto::RunEvent>),
    Failed(tonic::Status),
    Ended,
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
    pub load: Option<&'a crate::plan::load::LoadPlan>,
    /// Where agents' reports of the faults they applied go (the injector).
    pub fault_done: Option<mpsc::UnboundedSender<(usize, proto::FaultDone)>>,
    pub obs: &'a dyn Observer,
}

/// Follow every agent until each has sent its finish or is lost, folding
/// intervals into `live` and showing it once a second.
pub async fn follow(
    f: Follow<'_>,
    streams: Vec<EventStream>,
    controls: &Controls,
    live: &mut Live,
) -> Result<Vec<Followed>, CoordinatorError> {
    let n = f.links.len();
    let (tx, mut rx) = mpsc::channel::<(usize, StreamEvent)>(256);
    for (i, mut stream) in streams.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let ev = match stream.message().await {
                    Ok(Some(ev)) => StreamEvent::Event(Box::new(ev)),
                    Ok(None) => StreamEvent::Ended,
                    Err(s) => StreamEvent::Failed(s),
                };
                let last = !matches!(ev, StreamEvent::Event(_));
                if tx.send((i, ev)).await.is_err() || last {
                    return;
                }
            }
        });
    }
    drop(tx);
    let address = |i: usize| f.links.get(i).map_or("?", |l| l.address.as_str());
    let mut outcome: Vec<Option<Followed>> = vec![None; n];
    let mut last_heard = vec![Instant::now().max(f.started); n];
    let deadline = tokio::time::Instant::from_std(f.started + f.bound);
    // Tick a little after the agents' own second boundaries, so each frame
    // includes the interval that just ended.
    let first = tokio::time::Instant::from_std(f.started) + Duration::from_millis(1300);
    let mut ticker = tokio::time::interval_at(first, Duration::from_secs(1));
    let show = |live: &Live| {
        let sample = f.db.as_ref().and_then(|rx| rx.borrow().clone());
        let mut frame = live.frame(sample.as_ref());
        // While the plan lasts (the drain after it offers nothing).
        let now = std::time::Duration::from_secs_f64(frame.elapsed_s.max(0.0));
        frame.offered = f.load.filter(|l| l.staged && now <= l.plan.duration()).map(|l| (l.plan.value_at(now), l.open));
        f.obs.notice(&Notice::Live(&frame));
    };
    while outcome.iter().any(Option::is_none) {
        let mut newly_lost: Option<(usize, String)> = None;
        tokio::select! {
            msg = rx.recv() => {
                let Some((i, ev)) = msg else { break };
                if let Some(t) = last_heard.get_mut(i) {
                    *t = Instant::now();
                }
                let open = outcome.get(i).is_some_and(Option::is_none);
                match ev {
                    StreamEvent::Event(boxed) => match boxed.event {
                        Some(run_event::Event::Progress(p)) => {
                            let iv = Interval::try_from(&p)
                                .map_err(|e| CoordinatorError::agent(address(i), format!("bad progress: {e}")))?;
                            live.fold(i, iv)
                                .map_err(|e| CoordinatorError::agent(address(i), format!("bad progress: {e}")))?;
                        }
                        Some(run_event::Event::Started(s)) => {
                            if let Some(t) = f.tracker.filter(|_| open) {
                                t.started(i, s.instance_ids);
                            }
                        }
                        Some(run_event::Event::FaultDone(d)) => {
                            if let Some(tx) = &f.fault_done {
                                let _ = tx.send((i, d));
                            }
                        }
                        Some(run_event::Event::Result(r)) => {
                            if let Some(t) = f.tracker {
                                t.forget(i);
                            }
                            let finish = Finish::from(&r);
                            let got = live.agents.get(i).map_or(0, |a| a.intervals);
                            if finish.progress_messages != got {
                                tracing::warn!(agent = %address(i), sent = finish.progress_messages, got, "progress messages missing");
                            }
                            outcome[i] = Some(Followed::Finished(finish));
                        }
                        None => {}
                    },
                    StreamEvent::Failed(s) if open => newly_lost = Some((i, format!("stream broke: {}", s.message()))),
                    StreamEvent::Ended if open => newly_lost = Some((i, "stream ended without a result".into())),
                    _ => {}
                }
            }
            _ = ticker.tick() => {
                show(live);
                let now = Instant::now();
                if now > f.started {
                    newly_lost = (0..n).find(|&i| outcome[i].is_none() && now.duration_since(last_heard[i]) > SILENCE)
                        .map(|i| (i, format!("silent for {:.1}s", now.duration_since(last_heard[i]).as_secs_f64())));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Err(CoordinatorError::Timeout(f.bound)),
        }
        if let Some((i, reason)) = newly_lost {
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
            outcome[i] = Some(Followed::Lost { at, reason });
            if stopping {
                for j in (0..n).filter(|&j| outcome[j].is_none()) {
                    controls.stop(j, &format!("agent {} was lost", address(i))).await;
                }
            }
        }
    }
    show(live);
    outcome
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or_else(|| CoordinatorError::agent(address(i), "no result")))
        .collect()
}
