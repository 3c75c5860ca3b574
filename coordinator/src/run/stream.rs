//! The Run streams of one run: start every agent at once, keep each one's
//! lease alive with a heartbeat a second, follow progress and results, and
//! notice a lost agent.
//!
//! An agent is lost when its stream breaks (a killed process: at once), ends
//! without a result, or stays silent for [`SILENCE`] (a hung process or a cut
//! link that TCP has not noticed). By policy the run then goes on with the
//! other agents or stops them (they drain and report).

use std::time::{Duration, Instant};

use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::proto::{self, run_control, run_event};
use loadgen_common::result::{Counts, Histograms, MemorySample};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::agents::AgentLink;
use crate::error::CoordinatorError;
use crate::live::Live;

/// An agent silent for this long is lost. Progress comes every second.
pub const SILENCE: Duration = Duration::from_secs(5);
/// Heartbeat interval on each control stream (the agents' lease is 3 s).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What to do when an agent is lost mid-run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnAgentLoss {
    /// Stop the other agents too (they drain and report); the run is degraded.
    Abort,
    /// Finish with the remaining agents; the run is degraded.
    Continue,
}

type EventStream = tonic::Streaming<proto::RunEvent>;

/// The control side of every agent's Run call. Heartbeats go on until
/// [`Controls::close`] (after Release), so agents keep their runtimes up while
/// the coordinator still needs them (for another agent's orphans).
#[derive(Debug)]
pub struct Controls {
    senders: Vec<mpsc::Sender<proto::RunControl>>,
    heartbeats: CancellationToken,
}

impl Controls {
    /// Ask agent `i` to stop starting orchestrations and drain.
    pub async fn stop(&self, i: usize, reason: &str) {
        if let Some(tx) = self.senders.get(i) {
            let msg = proto::RunControl {
                control: Some(run_control::Control::Stop(proto::Stop { reason: reason.to_string() })),
            };
            let _ = tx.send(msg).await;
        }
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
    let heartbeats = CancellationToken::new();
    let mut senders = Vec::with_capacity(links.len());
    let mut set = tokio::task::JoinSet::new();
    for (i, l) in links.iter().enumerate() {
        let (tx, rx) = mpsc::channel(8);
        let start = proto::RunRequest {
            run_id: run_id.to_string(),
            start_delay_ms: u64::try_from(start_delay.as_millis()).unwrap_or(u64::MAX),
        };
        let _ = tx.send(proto::RunControl { control: Some(run_control::Control::Start(start)) }).await;
        spawn_heartbeat(tx.clone(), heartbeats.clone());
        senders.push(tx);
        let mut client = l.client.clone();
        let address = l.address.clone();
        set.spawn(async move {
            let r = client
                .run(ReceiverStream::new(rx))
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

fn spawn_heartbeat(tx: mpsc::Sender<proto::RunControl>, until: CancellationToken) {
    tokio::spawn(async move {
        let mut seq = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = until.cancelled() => return,
            }
            seq += 1;
            let beat = proto::RunControl { control: Some(run_control::Control::Heartbeat(proto::Heartbeat { seq })) };
            if tx.send(beat).await.is_err() {
                return;
            }
        }
    });
}

/// How one agent's run ended, as the coordinator saw it.
#[derive(Debug)]
pub enum Followed {
    /// The agent sent its result.
    Finished { result: proto::AgentResult, memory: Vec<MemorySample> },
    /// The agent was lost; what it had streamed until then.
    Lost {
        at: Duration,
        reason: String,
        counts: Counts,
        in_flight: u64,
        histograms: Box<Histograms>,
        memory: Vec<MemorySample>,
    },
}

enum StreamEvent {
    Event(Box<proto::RunEvent>),
    Failed(tonic::Status),
    Ended,
}

/// Follow every agent until each has sent its result or is lost; print a
/// live line every second. `bound` limits the whole wait.
pub async fn follow(
    links: &[AgentLink],
    streams: Vec<EventStream>,
    controls: &Controls,
    policy: OnAgentLoss,
    started: Instant,
    bound: Duration,
    view: LiveView,
) -> Result<(Vec<Followed>, Live), CoordinatorError> {
    let n = links.len();
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
    let mut live = Live::new(n, started);
    let mut screen = Screen { table: view.table, drawn: 0 };
    let mut results: Vec<Option<proto::AgentResult>> = vec![None; n];
    let mut lost: Vec<Option<(Duration, String)>> = vec![None; n];
    let mut last_heard = vec![Instant::now().max(started); n];
    let done = |results: &[Option<proto::AgentResult>], lost: &[Option<(Duration, String)>]| {
        results.iter().zip(lost).all(|(r, l)| r.is_some() || l.is_some())
    };
    let deadline = tokio::time::Instant::from_std(started + bound);
    // Tick a little after the agents' own second boundaries, so each line
    // includes the interval that just ended.
    let first = tokio::time::Instant::from_std(started) + Duration::from_millis(1300);
    let mut ticker = tokio::time::interval_at(first, Duration::from_secs(1));
    while !done(&results, &lost) {
        let mut newly_lost: Option<(usize, String)> = None;
        tokio::select! {
            msg = rx.recv() => {
                let Some((i, ev)) = msg else { break };
                let address = links.get(i).map(|l| l.address.as_str()).unwrap_or("?");
                if let Some(t) = last_heard.get_mut(i) {
                    *t = Instant::now();
                }
                let ev = match ev {
                    StreamEvent::Event(boxed) => match boxed.event {
                        Some(e) => Ok(e),
                        None => continue,
                    },
                    other => Err(other),
                };
                match ev {
                    Ok(run_event::Event::Progress(p)) => {
                        live.progress(i, &p)
                            .map_err(|e| CoordinatorError::agent(address, format!("bad progress: {e}")))?;
                    }
                    Ok(run_event::Event::Result(r)) => {
                        results[i] = Some(r);
                    }
                    Err(StreamEvent::Failed(s)) if results[i].is_none() && lost[i].is_none() => {
                        newly_lost = Some((i, format!("stream broke: {}", s.message())));
                    }
                    Err(StreamEvent::Ended) if results[i].is_none() && lost[i].is_none() => {
                        newly_lost = Some((i, "stream ended without a result".into()));
                    }
                    _ => {}
                }
            }
            _ = ticker.tick() => {
                screen.draw(&live, view.db.as_ref());
                let now = Instant::now();
                if now > started {
                    for i in 0..n {
                        if results[i].is_none() && lost[i].is_none() && now.duration_since(last_heard[i]) > SILENCE {
                            newly_lost = Some((i, format!("silent for {:.1}s", now.duration_since(last_heard[i]).as_secs_f64())));
                            break;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Err(CoordinatorError::Timeout(bound)),
        }
        if let Some((i, reason)) = newly_lost {
            let at = started.elapsed();
            let address = links.get(i).map(|l| l.address.as_str()).unwrap_or("?");
            screen.below();
            eprintln!("agent {i} ({address}) lost after {:.1}s: {reason}", at.as_secs_f64());
            tracing::warn!(agent = %address, reason, "agent lost");
            live.lost(i);
            lost[i] = Some((at, reason));
            if policy == OnAgentLoss::Abort {
                eprintln!("--on-agent-loss abort: stopping the other agents (they drain and report)");
                for j in 0..n {
                    if j != i && results[j].is_none() && lost[j].is_none() {
                        controls.stop(j, &format!("agent {address} was lost")).await;
                    }
                }
            }
        }
    }
    screen.draw(&live, view.db.as_ref());
    let mut out = Vec::with_capacity(n);
    for (i, (r, l)) in results.into_iter().zip(lost).enumerate() {
        let address = links.get(i).map(|l| l.address.as_str()).unwrap_or("?");
        let streamed = live.streamed_counts(i).cloned().unwrap_or_default();
        match (r, l) {
            (Some(r), _) => {
                let totals: Counts = r.totals.as_ref().map(Counts::from).unwrap_or_default();
                let samples = LatencyHistogram::decode(&r.e2e_latency).map(|h| h.count()).unwrap_or(0);
                if streamed != totals || live.streamed_samples(i) != samples {
                    tracing::warn!(agent = %address, ?streamed, ?totals, "progress stream and final result disagree");
                }
                out.push(Followed::Finished { result: r, memory: live.memory(i) });
            }
            (None, Some((at, reason))) => out.push(Followed::Lost {
                at,
                reason,
                counts: streamed,
                in_flight: live.in_flight(i),
                histograms: Box::new(live.streamed_histograms(i)),
                memory: live.memory(i),
            }),
            (None, None) => return Err(CoordinatorError::agent(address, "no result")),
        }
    }
    Ok((out, live))
}

/// How progress is shown while a run streams.
#[derive(Debug, Default)]
pub struct LiveView {
    /// A table redrawn in place (a terminal), or one plain line a second.
    pub table: bool,
    /// The database sampler's latest sample.
    pub db: Option<tokio::sync::watch::Receiver<Option<loadgen_common::result::DbSample>>>,
}

/// The terminal area the live table occupies.
struct Screen {
    table: bool,
    /// Lines of the table drawn last (0: draw below whatever came before).
    drawn: usize,
}

impl Screen {
    fn draw(
        &mut self,
        live: &Live,
        db: Option<&tokio::sync::watch::Receiver<Option<loadgen_common::result::DbSample>>>,
    ) {
        let sample = db.and_then(|rx| rx.borrow().clone());
        let text = live.render(sample.as_ref(), self.table);
        if self.table {
            // Back to the table's first line, clear to the end, redraw.
            let up = if self.drawn > 0 { format!("\x1b[{}F\x1b[J", self.drawn) } else { String::new() };
            eprintln!("{up}{text}");
            self.drawn = text.lines().count();
        } else {
            eprintln!("{text}");
        }
    }

    /// Something else is printed: the next table goes below it.
    fn below(&mut self) {
        self.drawn = 0;
    }
}
