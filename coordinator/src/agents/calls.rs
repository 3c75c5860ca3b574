//! The agents' unary calls at the wire border: Prepare (every agent gets
//! its slice of the run and answers with the workload as it understood it,
//! which must equal the coordinator's own: a mixed-build fleet would run
//! other instances than the audit expects), Inspect (the audit's reads of a
//! store only the agent reaches, turned into the audit's rows) and Release.

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen_common::proto;
use loadgen_scenarios::{MetricStart, Observed};

use super::AgentLink;
use crate::db::audit::inspected::Inspected;
use crate::db::audit::query::InstanceRow;
use crate::error::CoordinatorError;
use loadgen_common::load::{Arrival, Loop};

use crate::plan::{AgentSlice, CompletionSource, ProfilePlan, RunPlan};

/// Bound on Release (stopping the driver and shutting runtimes down).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(45);

/// Bound on Prepare (connecting, verifying the schema, starting runtimes).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(90);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What one run asks of every agent.
pub struct RunRequest<'a> {
    pub run_id: &'a str,
    pub schema: &'a str,
    pub seed: u64,
    pub profile: &'a ProfilePlan,
    pub plan: &'a RunPlan,
    /// The workload as the coordinator understands it.
    pub workload: &'a str,
    /// sqlite-file: the run's database file.
    pub sqlite_path: Option<&'a std::path::Path>,
}

/// The request of agent `slice.index`.
fn request(r: &RunRequest<'_>, slice: &AgentSlice, agents: usize) -> Result<proto::PrepareRequest, CoordinatorError> {
    let p = r.profile;
    // The plan check keeps every share under the limit; a share over it is a
    // bug to report, never a count to cap silently.
    let in_flight = u32::try_from(slice.in_flight()).map_err(|_| {
        CoordinatorError::Local(format!(
            "agent {}'s in-flight share {} is over the protocol's {}",
            slice.index,
            slice.in_flight(),
            loadgen_common::limits::MAX_IN_FLIGHT_PER_AGENT
        ))
    })?;
    let load = &slice.load;
    // A constant load is its one value; stages go as the plan's points.
    let stages: Vec<proto::StagePoint> = if load.staged {
        load.plan
            .points()
            .iter()
            .map(|&(at, value)| proto::StagePoint { at_us: u64::try_from(at.as_micros()).unwrap_or(u64::MAX), value })
            .collect()
    } else {
        Vec::new()
    };
    let load = match load.kind {
        Loop::Open(arrival) => proto::prepare_request::Load::Open(proto::OpenLoop {
            rate_per_sec: load.peak(),
            arrival: match arrival {
                Arrival::Constant => proto::Arrival::Constant,
                Arrival::Poisson => proto::Arrival::Poisson,
            } as i32,
            stages,
            phase: slice.phase,
            seed: slice.seed,
            max_in_flight: in_flight,
        }),
        Loop::Closed => proto::prepare_request::Load::Closed(proto::ClosedLoop { concurrency: in_flight, stages }),
    };
    Ok(proto::PrepareRequest {
        run_id: r.run_id.to_string(),
        schema: r.schema.to_string(),
        agent_index: slice.index,
        agent_count: agents as u32,
        workload: Some(proto::Workload {
            scenario: r.plan.workload.scenario.clone(),
            options: r.plan.workload.given.clone().into_iter().collect(),
            seed: r.seed,
        }),
        runtime: Some(proto::RuntimeSettings {
            runtimes: p.runtimes_per_agent,
            orchestration_concurrency: p.dispatchers.orch,
            worker_concurrency: p.dispatchers.worker,
            poll_interval_ms: ms(p.poll_interval),
            orchestrator_lock_timeout_ms: p.orchestrator_lock_timeout.map_or(0, ms),
            worker_lock_timeout_ms: p.worker_lock_timeout.map_or(0, ms),
        }),
        load: Some(load),
        duration_ms: ms(p.duration),
        drain_timeout_ms: ms(p.drain_timeout),
        completion_poll_ms: ms(r.plan.completion_poll).max(1),
        db_latency_us: u64::try_from(p.db_latency.as_micros()).unwrap_or(u64::MAX),
        iterations: slice.iterations.unwrap_or(0),
        relay: r.plan.faults.needs_relay(),
        migrate: r.plan.agents_migrate,
        provider: match r.plan.provider {
            crate::plan::ProviderKind::Postgres => proto::Provider::Postgres,
            crate::plan::ProviderKind::SqliteMemory => proto::Provider::SqliteMemory,
            crate::plan::ProviderKind::SqliteFile => proto::Provider::SqliteFile,
        } as i32,
        sqlite_path: r.sqlite_path.map(|p| p.display().to_string()).unwrap_or_default(),
        tracking: match r.plan.completion_source {
            CompletionSource::Cluster => proto::Tracking::Cluster,
            CompletionSource::Agent => proto::Tracking::Agent,
        } as i32,
    })
}

/// Prepare every agent concurrently; the first failure fails the run.
pub async fn prepare_all(
    links: &[AgentLink],
    slices: &[AgentSlice],
    r: &RunRequest<'_>,
) -> Result<(), CoordinatorError> {
    let mut set = tokio::task::JoinSet::new();
    for (l, slice) in links.iter().zip(slices) {
        let req = request(r, slice, links.len())?;
        let mut client = l.client.clone();
        let address = l.address.clone();
        set.spawn(async move {
            let mut req = tonic::Request::new(req);
            req.set_timeout(PREPARE_TIMEOUT);
            client
                .prepare(req)
                .await
                .map(|reply| (address.clone(), reply.into_inner().workload))
                .map_err(|s| CoordinatorError::agent(&address, format!("prepare failed: {}", s.message())))
        });
    }
    while let Some(joined) = set.join_next().await {
        let (address, theirs) = joined.map_err(|e| CoordinatorError::Local(e.to_string()))??;
        if theirs != r.workload {
            return Err(CoordinatorError::agent(
                &address,
                format!("understands the workload as {theirs:?}, this coordinator as {:?}: mixed builds", r.workload),
            ));
        }
    }
    Ok(())
}

/// Bound on the whole inspection (a few calls per instance, in-process).
const INSPECT_TIMEOUT: Duration = Duration::from_secs(120);

/// Ask `link` for every instance of `run_id` and the latencies of `metrics`.
pub async fn inspect(
    link: &AgentLink,
    run_id: &str,
    metrics: &[(String, MetricStart)],
) -> Result<Inspected, CoordinatorError> {
    let fail = |detail: String| CoordinatorError::agent(&link.address, format!("inspecting the store: {detail}"));
    let request = proto::InspectRequest {
        run_id: run_id.to_string(),
        metrics: metrics
            .iter()
            .map(|(event, from)| proto::MetricEvent { event: event.clone(), raised_at: *from == MetricStart::RaisedAt })
            .collect(),
    };
    let mut client = link.client.clone();
    let read = async {
        let mut stream = client.inspect(request).await.map_err(|s| fail(s.message().to_string()))?.into_inner();
        let mut found = Inspected::default();
        while let Some(chunk) = stream.message().await.map_err(|s| fail(s.message().to_string()))? {
            found.rows.extend(chunk.instances.into_iter().map(|i| InstanceRow {
                id: i.id,
                orchestration: i.orchestration,
                observed: Observed {
                    status: i.status,
                    output: i.has_output.then_some(i.output),
                    output_len: i.output_len,
                    output_md5: i.output_md5,
                    executions: i.executions,
                    events: i.events.into_iter().collect::<BTreeMap<_, _>>(),
                },
            }));
            found.samples.extend(chunk.samples.into_iter().map(|s| (s.orchestration, s.event, s.ms)));
            if chunk.last {
                found.queued = chunk.queued;
                return Ok(found);
            }
        }
        Err(fail("the stream ended before its last chunk".into()))
    };
    tokio::time::timeout(INSPECT_TIMEOUT, read)
        .await
        .map_err(|_| fail(format!("no answer within {INSPECT_TIMEOUT:?}")))?
}

/// What one agent's release handed back.
#[derive(Debug, Default)]
pub struct Released {
    /// It answered (a lost or failing agent did not).
    pub answered: bool,
    /// Activities its runtimes executed after its result was sent.
    pub late_activities: u64,
    /// Their lines of the activity ledger, and how many it could not keep.
    pub runs: Vec<loadgen_common::ledger::ActivityRun>,
    pub dropped: u64,
}

/// Release the agents at `indices` (lost ones are skipped: they cannot
/// answer); returns what each agent handed back (nothing for the others).
pub async fn release(links: &[AgentLink], run_id: &str, indices: &[usize]) -> Vec<Released> {
    let mut set = tokio::task::JoinSet::new();
    for l in indices.iter().filter_map(|&i| links.get(i)) {
        let mut client = l.client.clone();
        let (index, address, run_id) = (l.index, l.address.clone(), run_id.to_string());
        set.spawn(async move {
            let mut req = tonic::Request::new(proto::ReleaseRequest { run_id });
            req.set_timeout(RELEASE_TIMEOUT);
            match client.release(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let released = Released {
                        answered: true,
                        late_activities: r.late_activities,
                        runs: loadgen_common::wire::decode_runs(r.activity_runs),
                        dropped: r.activity_runs_dropped,
                    };
                    (index, released)
                }
                Err(s) => {
                    tracing::warn!(agent = %address, error = %s.message(), "release failed");
                    (index, Released::default())
                }
            }
        });
    }
    let mut out: Vec<Released> = (0..links.len()).map(|_| Released::default()).collect();
    while let Some(Ok((i, r))) = set.join_next().await {
        if let Some(slot) = out.get_mut(i as usize) {
            *slot = r;
        }
    }
    out
}
