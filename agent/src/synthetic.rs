//! Synthetic agents: the agent protocol without a database. Each one answers
//! Hello and Prepare, and on Run streams a progress message a second with
//! realistic interval counts and histogram deltas, then a result. They let the
//! coordinator's fan-in be measured (and tested) at a scale no database on one
//! machine could feed: `agent --synthetic 100` serves 100 of them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::proto::agent_server::Agent as AgentRpc;
use loadgen_common::proto::{self, RunEvent, run_control::Control, run_event};
use loadgen_common::tally::{Counts, Finish, Interval, Tally};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Default load duration when Run comes without a Prepare.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Completions each synthetic agent reports per second.
const COMPLETIONS_PER_SECOND: u64 = 50;
/// Start reports (cluster tracking) each synthetic agent sends per second at
/// most (fewer in a large cluster, as a real agent batches them: see
/// `loadgen_common::tracker::start_report_interval`), unless
/// `LOADGEN_SYNTHETIC_START_REPORTS` says otherwise (0: none).
const STARTED_BATCHES: u64 = 10;

fn start_reports_per_second() -> u64 {
    std::env::var("LOADGEN_SYNTHETIC_START_REPORTS").ok().and_then(|v| v.parse().ok()).unwrap_or(STARTED_BATCHES)
}

/// One synthetic agent.
#[derive(Debug, Clone, Default)]
pub struct Synthetic {
    index: u32,
    prepared: Arc<Mutex<Option<proto::PrepareRequest>>>,
}

impl Synthetic {
    pub fn new(index: u32) -> Self {
        Synthetic { index, prepared: Arc::default() }
    }
}

/// Latencies of one interval, deterministic per agent and second.
fn interval_histogram(seed: u64, n: u64) -> LatencyHistogram {
    let mut h = LatencyHistogram::new();
    let mut x = seed | 1;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h.record_us(100_000 + x % 400_000);
    }
    h
}

#[tonic::async_trait]
impl AgentRpc for Synthetic {
    async fn hello(&self, _: Request<proto::HelloRequest>) -> Result<Response<proto::HelloReply>, Status> {
        Ok(Response::new(proto::HelloReply {
            protocol_version: proto::PROTOCOL_VERSION,
            agent_version: loadgen_common::TOOL_VERSION.into(),
            duroxide_version: duroxide::current_build_version().to_string(),
            duroxide_pg_version: loadgen_common::DUROXIDE_PG_VERSION.into(),
            hostname: format!("synthetic-{}", self.index),
            pid: std::process::id() * 1000 + self.index,
            state: proto::AgentState::Idle as i32,
            pool_max: 10,
            unix_micros: chrono::Utc::now().timestamp_micros(),
            clock_control: false,
        }))
    }

    async fn prepare(&self, req: Request<proto::PrepareRequest>) -> Result<Response<proto::PrepareReply>, Status> {
        let req = req.into_inner();
        // Understand the workload as a real agent would.
        let spec = crate::plan::RunSpec::try_from(req.clone())?;
        let w = &spec.workload;
        let ctx = crate::scenario::Context {
            run_id: spec.run_id.clone(),
            seed: w.seed,
            agent: spec.agent_index,
            agents: spec.agent_count,
        };
        let built = crate::scenario::build(&w.scenario, &w.options, &ctx).map_err(crate::error::AgentError::from)?;
        *self.prepared.lock().unwrap_or_else(|p| p.into_inner()) = Some(req);
        Ok(Response::new(proto::PrepareReply { workload: built.describe(w.seed) }))
    }

    type RunStream = ReceiverStream<Result<RunEvent, Status>>;

    async fn run(&self, req: Request<Streaming<proto::RunControl>>) -> Result<Response<Self::RunStream>, Status> {
        let mut control = req.into_inner();
        let Ok(Some(proto::RunControl { control: Some(Control::Start(start)) })) = control.message().await else {
            return Err(Status::invalid_argument("the first message of Run must be `start`"));
        };
        // Keep reading heartbeats so the stream stays healthy.
        tokio::spawn(async move { while let Ok(Some(_)) = control.message().await {} });
        let (duration, agents) = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or((DEFAULT_DURATION, 1), |p| (Duration::from_millis(p.duration_ms), p.agent_count));
        let (tx, rx) = mpsc::channel(16);
        let index = u64::from(self.index);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(start.start_delay_ms)).await;
            let seconds = duration.as_secs().max(1);
            let mut seq = 0u64;
            // As a real agent batches them in a cluster this size.
            let interval = loadgen_common::tracker::start_report_interval(agents).as_millis() as u64;
            let batches = start_reports_per_second().min(1000 / interval.max(1));
            for second in 1..=seconds {
                // Cluster tracking: report the second's starts in ten batches,
                // as a real agent reports what it started (batched).
                if batches == 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                for _ in 0..batches {
                    tokio::time::sleep(Duration::from_millis(1000 / batches)).await;
                    let per = COMPLETIONS_PER_SECOND / batches;
                    let instance_ids = (seq..seq + per).map(|s| format!("syn-{index}-{s}")).collect();
                    seq += per;
                    let started = run_event::Event::Started(proto::Started { instance_ids });
                    if tx.send(Ok(RunEvent { event: Some(started) })).await.is_err() {
                        return;
                    }
                }
                let h = interval_histogram(index * 1_000_003 + second, COMPLETIONS_PER_SECOND);
                let mut tally = Tally {
                    counts: Counts {
                        launched: COMPLETIONS_PER_SECOND,
                        completed: COMPLETIONS_PER_SECOND,
                        activities: COMPLETIONS_PER_SECOND * 5,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                tally.hist.observed = h.clone();
                tally.hist.e2e = h;
                let interval = Interval {
                    seq: second,
                    elapsed_ms: second * 1000,
                    in_flight: 20,
                    rss_bytes: loadgen_common::process::rss_bytes(),
                    cpu_ms: 0,
                    scenarios: [("fanout".to_string(), tally)].into(),
                    status_queries: 0,
                    status_query_errors: 0,
                    unix_micros: chrono::Utc::now().timestamp_micros(),
                    provider_errors: Default::default(),
                    activity_runs: Vec::new(),
                    activity_runs_dropped: 0,
                };
                let p = loadgen_common::wire::encode_interval(&interval);
                if tx.send(Ok(RunEvent { event: Some(run_event::Event::Progress(p)) })).await.is_err() {
                    return;
                }
            }
            let finish = Finish { elapsed_ms: seconds * 1000, progress_messages: seconds, ..Default::default() };
            let result = proto::AgentResult::from(&finish);
            let _ = tx.send(Ok(RunEvent { event: Some(run_event::Event::Result(result)) })).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type InspectStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::InspectChunk, Status>> + Send>>;

    async fn inspect(&self, _: Request<proto::InspectRequest>) -> Result<Response<Self::InspectStream>, Status> {
        Err(Status::unimplemented("a synthetic agent has no store to inspect"))
    }

    async fn release(&self, _: Request<proto::ReleaseRequest>) -> Result<Response<proto::ReleaseReply>, Status> {
        *self.prepared.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(Response::new(proto::ReleaseReply { late_activities: 0, ..Default::default() }))
    }
}

pub use loadgen_common::wire::synthetic_prepare_request as prepare_request;

/// Serve `count` synthetic agents on loopback; prints "listening on ADDR" for
/// each, then serves until `shutdown`.
pub async fn serve(count: u32, token: &str, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    use loadgen_common::auth::RequireToken;
    use loadgen_common::proto::agent_server::AgentServer;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..count {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        let require = RequireToken::new(token).map_err(anyhow::Error::msg)?;
        let stop = shutdown.clone();
        set.spawn(
            tonic::transport::Server::builder()
                .add_service(AgentServer::with_interceptor(Synthetic::new(i), require))
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async move {
                    stop.cancelled().await
                }),
        );
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}
