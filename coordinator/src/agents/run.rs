//! The Run call of every agent, at the wire border: opening it (each agent
//! with the same start delay), its control side as typed methods
//! ([`Route`]: stop, completions, an agent fault; heartbeats a second
//! until [`Controls::close`]) and its event side as domain events
//! ([`AgentEvent`]). Nothing above this module builds or reads a Run
//! message.

use std::time::Duration;

use loadgen_common::proto::{self, run_control, run_event};
use loadgen_common::tally::{Finish, Interval};
use loadgen_common::tracker::Finished;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use super::AgentLink;
use crate::error::CoordinatorError;
use crate::faults::AgentAction;

/// Heartbeat interval on each control stream (the agents' lease is 3 s).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The control side of one agent's Run call.
///
/// Unbounded: what goes on it is a heartbeat a second, a stop, faults, and
/// completions, which are bounded by the instances in flight.
#[derive(Clone, Debug)]
pub struct Route(mpsc::UnboundedSender<proto::RunControl>);

impl Route {
    fn send(&self, control: run_control::Control) -> bool {
        self.0.send(proto::RunControl { control: Some(control) }).is_ok()
    }

    /// Ask the agent to stop starting orchestrations and drain.
    pub fn stop(&self, reason: &str) -> bool {
        self.send(run_control::Control::Stop(proto::Stop { reason: reason.to_string() }))
    }

    /// Tell the agent which of its instances ended (cluster tracking);
    /// false when the agent's stream is closed (it ended).
    pub fn completions(&self, rows: Vec<Finished>) -> bool {
        self.send(run_control::Control::Completions(loadgen_common::wire::completions(rows)))
    }

    /// Ask the agent to apply a fault itself; false when its stream is closed.
    pub fn fault(&self, action: AgentAction) -> bool {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let fault = match action {
            AgentAction::RelayLatency { delay, duration } => proto::AgentFault {
                kind: proto::AgentFaultKind::Latency as i32,
                duration_ms: millis(duration),
                delay_us: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
                ..Default::default()
            },
            AgentAction::RelayPartition { duration } => proto::AgentFault {
                kind: proto::AgentFaultKind::Partition as i32,
                duration_ms: millis(duration),
                ..Default::default()
            },
            AgentAction::ClockSkew { offset_us, duration, id } => proto::AgentFault {
                kind: proto::AgentFaultKind::ClockSkew as i32,
                duration_ms: millis(duration),
                offset_us,
                id,
                ..Default::default()
            },
            AgentAction::UpgradeRuntimes { binary, id } => proto::AgentFault {
                kind: proto::AgentFaultKind::UpgradeRuntimes as i32,
                binary: binary.display().to_string(),
                id,
                ..Default::default()
            },
            AgentAction::RefuseConnect { code, every, share, duration, id } => proto::AgentFault {
                kind: proto::AgentFaultKind::RefuseConnect as i32,
                duration_ms: millis(duration),
                sqlstate: code,
                every,
                share: share.unwrap_or(0.0),
                id,
                ..Default::default()
            },
            AgentAction::RestartRuntime { runtime, downtime, id } => proto::AgentFault {
                kind: proto::AgentFaultKind::RestartRuntime as i32,
                duration_ms: millis(downtime),
                runtime,
                id,
                ..Default::default()
            },
        };
        self.send(run_control::Control::Fault(fault))
    }
}

/// Every agent's control side. Heartbeats go on until [`Controls::close`]
/// (after Release), so agents keep their runtimes up while the coordinator
/// still needs them (for another agent's orphans).
#[derive(Debug)]
pub struct Controls {
    routes: Vec<Route>,
    heartbeats: CancellationToken,
}

impl Controls {
    /// Ask agent `i` to stop starting orchestrations and drain.
    pub fn stop(&self, i: usize, reason: &str) {
        if let Some(r) = self.routes.get(i) {
            r.stop(reason);
        }
    }

    /// Each agent's route (cluster tracking, faults).
    pub fn routes(&self) -> Vec<Route> {
        self.routes.clone()
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

/// What an agent's Run stream says, as domain events.
#[derive(Debug)]
pub enum AgentEvent {
    /// One second's interval (or why it could not be read).
    Progress(Result<Interval, String>),
    /// Instances it started (cluster tracking).
    Started(Vec<String>),
    /// Its report on a fault it applied: what it did, or why it failed.
    FaultDone { id: u32, result: Result<String, String> },
    /// Its finish.
    Finished(Finish),
    /// The stream broke (a killed process, a cut link).
    Broke(String),
    /// The stream ended without a finish.
    Ended,
}

/// An agent's report on a fault it applied: (agent, fault id, what it did
/// or why it failed).
pub type FaultReport = (usize, u32, Result<String, String>);

/// Every agent's events, tagged with its index, as they arrive.
pub type Events = mpsc::Receiver<(usize, AgentEvent)>;

/// Open Run on every agent with the same start delay; agents track their
/// completions through duroxide's client API when `client_tracking`.
pub async fn start_all(
    links: &[AgentLink],
    run_id: &str,
    start_delay: Duration,
    client_tracking: bool,
) -> Result<(Controls, Events), CoordinatorError> {
    let heartbeats = CancellationToken::new();
    let mut routes = Vec::with_capacity(links.len());
    let mut set = tokio::task::JoinSet::new();
    for (i, l) in links.iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        let route = Route(tx);
        route.send(run_control::Control::Start(proto::RunRequest {
            run_id: run_id.to_string(),
            start_delay_ms: u64::try_from(start_delay.as_millis()).unwrap_or(u64::MAX),
            client_tracking,
        }));
        spawn_heartbeat(route.clone(), heartbeats.clone());
        routes.push(route);
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
    let controls = Controls { routes, heartbeats };
    let mut streams: Vec<Option<tonic::Streaming<proto::RunEvent>>> = (0..links.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| CoordinatorError::Local(e.to_string()))?;
        streams[i] = Some(r?);
    }
    Ok((controls, read_events(streams.into_iter().flatten().collect())))
}

fn spawn_heartbeat(route: Route, until: CancellationToken) {
    tokio::spawn(async move {
        let mut seq = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = until.cancelled() => return,
            }
            seq += 1;
            if !route.send(run_control::Control::Heartbeat(proto::Heartbeat { seq })) {
                return;
            }
        }
    });
}

/// One reader task per stream, converting each message at the border.
fn read_events(streams: Vec<tonic::Streaming<proto::RunEvent>>) -> Events {
    let (tx, rx) = mpsc::channel::<(usize, AgentEvent)>(256);
    for (i, mut stream) in streams.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let (ev, last) = match stream.message().await {
                    Ok(Some(ev)) => match event(ev) {
                        Some(ev) => (ev, false),
                        None => continue,
                    },
                    Ok(None) => (AgentEvent::Ended, true),
                    Err(s) => (AgentEvent::Broke(s.message().to_string()), true),
                };
                if tx.send((i, ev)).await.is_err() || last {
                    return;
                }
            }
        });
    }
    rx
}

/// A Run message as a domain event (none for an empty one).
fn event(ev: proto::RunEvent) -> Option<AgentEvent> {
    Some(match ev.event? {
        run_event::Event::Progress(p) => AgentEvent::Progress(Interval::try_from(&p).map_err(|e| e.to_string())),
        run_event::Event::Started(s) => AgentEvent::Started(s.instance_ids),
        run_event::Event::FaultDone(d) => {
            AgentEvent::FaultDone { id: d.id, result: if d.error.is_empty() { Ok(d.detail) } else { Err(d.error) } }
        }
        run_event::Event::Result(r) => AgentEvent::Finished(Finish::from(&r)),
    })
}
