//! The agent's gRPC service: thin handlers that turn requests into domain
//! calls on [`Agent`] (with [`crate::wire`] converting), and a [`Sink`] that
//! puts the driver's intervals on the Run stream. Errors map to statuses in
//! one place (`From<AgentError> for Status`).

use std::pin::Pin;
use std::time::Duration;

use loadgen_common::proto::agent_server::Agent as AgentRpc;
use loadgen_common::proto::{self, RunEvent, run_event};
use loadgen_common::tally::{Finish, Interval};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::driver::Sink;
use crate::plan::RunSpec;
use crate::session::{Agent, Phase, RelayFault};

/// If the coordinator does not take a message within this bound it is
/// considered gone and the agent stops starting orchestrations.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Run waits for its first (start) message.
const START_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Run stream's sending side, as the driver's sink.
struct StreamSink(mpsc::Sender<Result<RunEvent, Status>>);

impl StreamSink {
    async fn send(&mut self, event: run_event::Event) -> bool {
        let sent = self.0.send(Ok(RunEvent { event: Some(event) }));
        matches!(tokio::time::timeout(SEND_TIMEOUT, sent).await, Ok(Ok(())))
    }
}

impl Sink for StreamSink {
    async fn interval(&mut self, i: Interval) -> bool {
        self.send(run_event::Event::Progress(loadgen_common::wire::encode_interval(&i))).await
    }

    async fn finish(&mut self, f: Finish) -> bool {
        self.send(run_event::Event::Result((&f).into())).await
    }

    async fn started(&mut self, instance_ids: Vec<String>) -> bool {
        self.send(run_event::Event::Started(proto::Started { instance_ids })).await
    }
}

fn state(phase: Phase) -> proto::AgentState {
    match phase {
        Phase::Idle => proto::AgentState::Idle,
        Phase::Preparing => proto::AgentState::Preparing,
        Phase::Prepared => proto::AgentState::Prepared,
        Phase::Running => proto::AgentState::Running,
        Phase::Finished => proto::AgentState::Finished,
    }
}

/// Apply one fault the coordinator sent: to the relay at once, or in a task
/// that answers on the run's event stream when it is done.
fn apply_fault(agent: &Agent, f: proto::AgentFault, events: &mpsc::Sender<Result<RunEvent, Status>>) {
    // Bounded like the coordinator's schedule: a minute at most.
    let duration = Duration::from_millis(f.duration_ms.min(60_000));
    let (agent, events) = (agent.clone(), events.clone());
    match proto::AgentFaultKind::try_from(f.kind) {
        Ok(proto::AgentFaultKind::Latency) => {
            agent.relay_fault(RelayFault::Latency(Duration::from_micros(f.delay_us)), duration)
        }
        Ok(proto::AgentFaultKind::Partition) => agent.relay_fault(RelayFault::Partition, duration),
        Ok(proto::AgentFaultKind::RestartRuntime) => {
            tokio::spawn(async move {
                let result = agent.restart_runtime(f.runtime, duration).await;
                fault_done(&events, f.id, result).await;
            });
        }
        Ok(proto::AgentFaultKind::ClockSkew) => {
            let result = agent.clock_skew(f.offset_us, duration);
            tokio::spawn(async move { fault_done(&events, f.id, result).await });
        }
        Ok(proto::AgentFaultKind::UpgradeRuntimes) => {
            tokio::spawn(async move {
                let result = agent.upgrade_runtimes(std::path::Path::new(&f.binary)).await;
                fault_done(&events, f.id, result).await;
            });
        }
        Ok(proto::AgentFaultKind::RefuseConnect) => {
            let share = (f.share > 0.0).then_some(f.share);
            let refusal = crate::relay::Refusal { code: f.sqlstate.clone(), every: f.every.max(1), share };
            tokio::spawn(async move {
                let result = agent.refuse_connect(refusal, duration).await;
                fault_done(&events, f.id, result).await;
            });
        }
        _ => tracing::warn!(kind = f.kind, "unknown agent fault; ignored"),
    }
}

/// Tell the coordinator a fault `id` was applied (what happened) or not (why).
async fn fault_done(events: &mpsc::Sender<Result<RunEvent, Status>>, id: u32, result: Result<String, String>) {
    let done = match result {
        Ok(detail) => proto::FaultDone { id, detail, error: String::new() },
        Err(error) => proto::FaultDone { id, detail: String::new(), error },
    };
    let event = RunEvent { event: Some(run_event::Event::FaultDone(done)) };
    let _ = tokio::time::timeout(SEND_TIMEOUT, events.send(Ok(event))).await;
}

type EventStream = Pin<Box<dyn Stream<Item = Result<RunEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AgentRpc for Agent {
    async fn hello(&self, _req: Request<proto::HelloRequest>) -> Result<Response<proto::HelloReply>, Status> {
        let c = self.config();
        Ok(Response::new(proto::HelloReply {
            protocol_version: proto::PROTOCOL_VERSION,
            agent_version: loadgen_common::TOOL_VERSION.to_string(),
            duroxide_version: duroxide::current_build_version().to_string(),
            // The build's own (a patched-in checkout says so), from Cargo.lock.
            duroxide_pg_version: env!("LOADGEN_DUROXIDE_PG_BUILD").to_string(),
            hostname: c.hostname.clone(),
            pid: std::process::id(),
            state: state(self.phase()) as i32,
            pool_max: c.pool_max,
            unix_micros: chrono::Utc::now().timestamp_micros(),
            clock_control: c.clock.is_some(),
        }))
    }

    async fn prepare(&self, req: Request<proto::PrepareRequest>) -> Result<Response<proto::PrepareReply>, Status> {
        let spec = RunSpec::try_from(req.into_inner())?;
        let workload = Agent::prepare(self, spec).await?;
        Ok(Response::new(proto::PrepareReply { workload }))
    }

    type RunStream = EventStream;

    async fn run(&self, req: Request<Streaming<proto::RunControl>>) -> Result<Response<Self::RunStream>, Status> {
        use proto::run_control::Control;
        let mut control = req.into_inner();
        let first = tokio::time::timeout(START_MESSAGE_TIMEOUT, control.message()).await;
        let Ok(Ok(Some(proto::RunControl { control: Some(Control::Start(start)) }))) = first else {
            return Err(Status::invalid_argument("the first message of Run must be `start`"));
        };
        let (tx, rx) = mpsc::channel(64);
        let events = tx.clone();
        let (lease, feed) = Agent::run(
            self,
            &start.run_id,
            Duration::from_millis(start.start_delay_ms),
            start.client_tracking,
            StreamSink(tx),
        )?;
        // Feed the coordinator's heartbeats and stop requests into the lease,
        // its completions (cluster tracking) into the driver, and its faults
        // into the relay or the runtimes (a restart answers on the stream).
        let agent = self.clone();
        tokio::spawn(async move {
            loop {
                match control.message().await {
                    Ok(Some(proto::RunControl { control: Some(Control::Heartbeat(_)) })) => lease.renew(),
                    Ok(Some(proto::RunControl { control: Some(Control::Fault(f)) })) => {
                        lease.renew();
                        apply_fault(&agent, f, &events);
                    }
                    Ok(Some(proto::RunControl { control: Some(Control::Completions(c)) })) => {
                        lease.renew();
                        // The driver may have ended (drain timeout): late news is dropped.
                        let _ = feed.send(crate::wire::finished(c));
                    }
                    Ok(Some(proto::RunControl { control: Some(Control::Stop(s)) })) => {
                        tracing::info!(reason = %s.reason, "stop requested");
                        lease.renew();
                        lease.stop.cancel();
                    }
                    Ok(Some(_)) => lease.renew(),
                    Ok(None) => return lease.lose("the coordinator closed its control stream".into()),
                    Err(e) => return lease.lose(format!("control stream failed: {}", e.message())),
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type InspectStream = Pin<Box<dyn Stream<Item = Result<proto::InspectChunk, Status>> + Send>>;

    async fn inspect(&self, req: Request<proto::InspectRequest>) -> Result<Response<Self::InspectStream>, Status> {
        let req = req.into_inner();
        let metrics: Vec<(String, crate::scenario::MetricStart)> = req
            .metrics
            .into_iter()
            .map(|m| {
                let from = if m.raised_at {
                    crate::scenario::MetricStart::RaisedAt
                } else {
                    crate::scenario::MetricStart::FireAt
                };
                (m.event, from)
            })
            .collect();
        let found = Agent::inspect(self, &req.run_id, &metrics).await?;
        Ok(Response::new(Box::pin(tokio_stream::iter(crate::wire::inspection_chunks(found).into_iter().map(Ok)))))
    }

    async fn release(&self, req: Request<proto::ReleaseRequest>) -> Result<Response<proto::ReleaseReply>, Status> {
        let r = Agent::release(self, &req.into_inner().run_id).await?;
        Ok(Response::new(proto::ReleaseReply {
            late_activities: r.late_activities,
            activity_runs: loadgen_common::wire::encode_runs(&r.runs),
            activity_runs_dropped: r.dropped,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::{agent, sqlite_spec};

    #[tokio::test]
    async fn hello_says_who_and_what_state_and_prepare_maps_errors_to_statuses() {
        let a = agent();
        let hello =
            AgentRpc::hello(&a, Request::new(proto::HelloRequest { protocol_version: proto::PROTOCOL_VERSION }))
                .await
                .expect("hello")
                .into_inner();
        assert_eq!(hello.protocol_version, proto::PROTOCOL_VERSION);
        assert_eq!(hello.state, proto::AgentState::Idle as i32);
        assert_eq!((hello.hostname.as_str(), hello.pool_max), ("test", 10));
        assert!(!hello.duroxide_version.is_empty() && !hello.duroxide_pg_version.is_empty());
        // A request the wire refuses is an invalid argument naming the field.
        let mut bad = loadgen_common::wire::synthetic_prepare_request("r1", 0, 1, 1000);
        bad.agent_count = 0;
        let status = AgentRpc::prepare(&a, Request::new(bad)).await.expect_err("agent_count 0");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        // A second run while one is prepared is a failed precondition.
        Agent::prepare(&a, sqlite_spec("r1", 500)).await.expect("prepare");
        let busy = loadgen_common::wire::synthetic_prepare_request("r2", 0, 1, 1000);
        let status = AgentRpc::prepare(&a, Request::new(busy)).await.expect_err("busy");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        let hello =
            AgentRpc::hello(&a, Request::new(proto::HelloRequest { protocol_version: 0 })).await.expect("hello");
        assert_eq!(hello.into_inner().state, proto::AgentState::Prepared as i32);
        let released = AgentRpc::release(&a, Request::new(proto::ReleaseRequest { run_id: "r1".into() })).await;
        assert_eq!(released.expect("release").into_inner().late_activities, 0);
    }

    #[tokio::test]
    async fn the_sink_says_when_the_coordinator_stopped_listening() {
        let (tx, rx) = mpsc::channel(4);
        let mut sink = StreamSink(tx);
        assert!(sink.started(vec!["r-0-0".into()]).await);
        drop(rx);
        assert!(!sink.started(vec!["r-0-1".into()]).await);
    }

    #[test]
    fn every_phase_has_its_wire_state() {
        let states: Vec<proto::AgentState> =
            [Phase::Idle, Phase::Preparing, Phase::Prepared, Phase::Running, Phase::Finished].map(state).into();
        let mut distinct = states.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 5, "{states:?}");
    }
}
