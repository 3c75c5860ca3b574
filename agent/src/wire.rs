//! The agent's border with the wire: a `PrepareRequest` becomes a
//! [`RunSpec`] (bad values are errors naming the field, never defaults), and
//! the agent's state becomes the protocol's enum. Measurements cross in
//! [`loadgen_common::wire`].

use std::time::Duration;

use loadgen_common::limits;
use loadgen_common::proto;
use loadgen_common::schema::validate_schema_name;

use crate::error::AgentError;
use loadgen_common::stages::StagePlan;

use crate::plan::{Arrival, Load, RunSpec, RuntimeSpec, Spread, Store, Tracking, WorkloadSpec};

#[cfg(test)]
use crate::tracker::{Finished, Terminal};

fn invalid(field: &'static str, detail: impl Into<String>) -> AgentError {
    AgentError::InvalidRequest { field, detail: detail.into() }
}

impl TryFrom<proto::PrepareRequest> for RunSpec {
    type Error = AgentError;

    fn try_from(req: proto::PrepareRequest) -> Result<Self, AgentError> {
        if req.run_id.is_empty() || !req.run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid("run_id", "must be non-empty and alphanumeric"));
        }
        validate_schema_name(&req.schema).map_err(|e| invalid("schema", e.to_string()))?;
        if req.agent_count == 0 || req.agent_index >= req.agent_count {
            return Err(invalid("agent_index", format!("{} of {} agents", req.agent_index, req.agent_count)));
        }
        let w = req.workload.ok_or_else(|| invalid("workload", "missing"))?;
        if w.scenario.is_empty() {
            return Err(invalid("workload", "no scenario named"));
        }
        let r = req.runtime.ok_or_else(|| invalid("runtime", "missing"))?;
        if r.runtimes == 0 || r.runtimes > limits::MAX_RUNTIMES_PER_AGENT {
            return Err(invalid("runtimes", format!("must be 1..={}", limits::MAX_RUNTIMES_PER_AGENT)));
        }
        if r.orchestration_concurrency == 0 || r.worker_concurrency == 0 {
            return Err(invalid("dispatcher concurrency", "must be at least 1"));
        }
        if r.poll_interval_ms == 0 {
            return Err(invalid("poll interval", "must be positive"));
        }
        let ms = Duration::from_millis;
        let worker_lock = (r.worker_lock_timeout_ms > 0).then(|| ms(r.worker_lock_timeout_ms));
        if worker_lock.is_some_and(|t| !(limits::WORKER_LOCK.0..=limits::WORKER_LOCK.1).contains(&t)) {
            return Err(invalid("worker lock timeout", "must be between 1s and 5 minutes"));
        }
        let orchestrator_lock = (r.orchestrator_lock_timeout_ms > 0).then(|| ms(r.orchestrator_lock_timeout_ms));
        if orchestrator_lock.is_some_and(|t| !(limits::ORCHESTRATOR_LOCK.0..=limits::ORCHESTRATOR_LOCK.1).contains(&t))
        {
            return Err(invalid("orchestrator lock timeout", "must be between 1s and 10 minutes"));
        }
        let (load, spread) = load_of(req.load, req.duration_ms)?;
        if req.duration_ms == 0 || req.drain_timeout_ms == 0 || req.completion_poll_ms == 0 {
            return Err(invalid("plan", "duration, drain timeout and completion poll must be positive"));
        }
        let tracking = match proto::Tracking::try_from(req.tracking) {
            Ok(proto::Tracking::Agent) => Tracking::Agent,
            Ok(proto::Tracking::Cluster) => Tracking::Cluster,
            _ => return Err(invalid("tracking", format!("unknown completion tracking {}", req.tracking))),
        };
        let store = match proto::Provider::try_from(req.provider) {
            Ok(proto::Provider::Unspecified | proto::Provider::Postgres) => Store::Postgres,
            Ok(proto::Provider::SqliteMemory) => Store::SqliteMemory,
            Ok(proto::Provider::SqliteFile) if !req.sqlite_path.is_empty() => {
                Store::SqliteFile(std::path::PathBuf::from(&req.sqlite_path))
            }
            Ok(proto::Provider::SqliteFile) => return Err(invalid("sqlite_path", "sqlite-file needs a path")),
            Err(_) => return Err(invalid("provider", format!("unknown provider {}", req.provider))),
        };
        Ok(RunSpec {
            run_id: req.run_id,
            schema: req.schema,
            agent_index: req.agent_index,
            agent_count: req.agent_count,
            workload: WorkloadSpec { scenario: w.scenario, options: w.options.into_iter().collect(), seed: w.seed },
            runtime: RuntimeSpec {
                runtimes: r.runtimes,
                orchestration_concurrency: r.orchestration_concurrency,
                worker_concurrency: r.worker_concurrency,
                poll_interval: ms(r.poll_interval_ms),
                orchestrator_lock_timeout: (r.orchestrator_lock_timeout_ms > 0)
                    .then(|| ms(r.orchestrator_lock_timeout_ms)),
                worker_lock_timeout: worker_lock,
            },
            load,
            spread,
            duration: ms(req.duration_ms),
            drain_timeout: ms(req.drain_timeout_ms),
            tracking,
            completion_poll: ms(req.completion_poll_ms),
            db_latency: Duration::from_micros(req.db_latency_us),
            relay: req.relay,
            migrate: req.migrate,
            store,
            iterations: (req.iterations > 0).then_some(req.iterations),
        })
    }
}

/// The load of a Prepare: closed (a budget, maybe staged) or open (a rate
/// plan with its arrivals, phase, seed and in-flight cap), checked.
fn load_of(load: Option<proto::prepare_request::Load>, duration_ms: u64) -> Result<(Load, Spread), AgentError> {
    let plan_of = |points: &[proto::StagePoint]| -> Result<Option<StagePlan>, AgentError> {
        if points.is_empty() {
            return Ok(None);
        }
        let points = points.iter().map(|p| (Duration::from_micros(p.at_us), p.value)).collect();
        StagePlan::from_points(points).map(Some).map_err(|e| invalid("stages", e.to_string()))
    };
    let duration = Duration::from_millis(duration_ms);
    Ok(match load {
        Some(proto::prepare_request::Load::Closed(c)) if c.concurrency > 0 => {
            let closed = Load::closed(u64::from(c.concurrency), duration);
            let load = match plan_of(&c.stages)? {
                Some(plan) => Load { plan, staged: true, ..closed },
                None => closed,
            };
            (load, Spread::default())
        }
        Some(proto::prepare_request::Load::Closed(_)) => return Err(invalid("concurrency", "must be positive")),
        Some(proto::prepare_request::Load::Open(o)) => {
            if !(o.rate_per_sec.is_finite() && o.rate_per_sec > 0.0 && o.rate_per_sec <= limits::MAX_RATE) {
                return Err(invalid("rate", format!("{} is not a positive rate", o.rate_per_sec)));
            }
            if o.max_in_flight == 0 {
                return Err(invalid("max_in_flight", "must be positive"));
            }
            let arrival = match proto::Arrival::try_from(o.arrival) {
                Ok(proto::Arrival::Constant) => Arrival::Constant,
                Ok(proto::Arrival::Poisson) => Arrival::Poisson,
                _ => return Err(invalid("arrival", format!("unknown arrival {}", o.arrival))),
            };
            if !(0.0..1.0).contains(&o.phase) {
                return Err(invalid("phase", format!("{} is not in [0, 1)", o.phase)));
            }
            let open = Load::open(o.rate_per_sec, arrival, u64::from(o.max_in_flight), duration);
            let load = match plan_of(&o.stages)? {
                Some(plan) => Load { plan, staged: true, ..open },
                None => open,
            };
            (load, Spread { phase: o.phase, seed: o.seed })
        }
        None => return Err(invalid("load", "neither closed nor open loop")),
    })
}

/// Instances per Inspect chunk: well under gRPC's 4 MB message limit even
/// with outputs at the audit's short-output size.
const INSPECT_CHUNK: usize = 500;

/// An inspection as the chunks of the Inspect stream (the last one carries
/// the samples and the queues).
pub fn inspection_chunks(found: crate::inspect::Inspection) -> Vec<proto::InspectChunk> {
    let states: Vec<proto::InstanceState> = found
        .instances
        .into_iter()
        .map(|i| proto::InstanceState {
            id: i.id,
            orchestration: i.orchestration,
            status: i.observed.status,
            has_output: i.observed.output.is_some(),
            output: i.observed.output.unwrap_or_default(),
            output_len: i.observed.output_len,
            output_md5: i.observed.output_md5,
            executions: i.observed.executions,
            events: i.observed.events.into_iter().collect(),
        })
        .collect();
    let mut chunks: Vec<proto::InspectChunk> = states
        .chunks(INSPECT_CHUNK)
        .map(|c| proto::InspectChunk { instances: c.to_vec(), ..Default::default() })
        .collect();
    let samples = found
        .samples
        .into_iter()
        .map(|s| proto::MetricSample { orchestration: s.orchestration, event: s.event, ms: s.ms })
        .collect();
    let last = proto::InspectChunk { samples, queued: found.queued, last: true, ..Default::default() };
    chunks.push(last);
    chunks
}

pub use loadgen_common::wire::{completions, finished};

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> proto::PrepareRequest {
        proto::PrepareRequest {
            run_id: "ab12cd34".into(),
            schema: "loadgen_ab12cd34".into(),
            agent_index: 1,
            agent_count: 2,
            workload: Some(proto::Workload { scenario: "fanout".into(), options: Default::default(), seed: 7 }),
            runtime: Some(proto::RuntimeSettings {
                runtimes: 1,
                orchestration_concurrency: 2,
                worker_concurrency: 2,
                poll_interval_ms: 100,
                orchestrator_lock_timeout_ms: 0,
                worker_lock_timeout_ms: 0,
            }),
            load: Some(proto::prepare_request::Load::Closed(proto::ClosedLoop { concurrency: 5, stages: vec![] })),
            duration_ms: 1000,
            drain_timeout_ms: 1000,
            completion_poll_ms: 50,
            db_latency_us: 0,
            iterations: 0,
            tracking: proto::Tracking::Cluster as i32,
            relay: false,
            migrate: false,
            provider: proto::Provider::Postgres as i32,
            sqlite_path: String::new(),
        }
    }

    #[test]
    fn completions_cross_the_wire_unchanged() {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456);
        let rows = vec![
            Finished { instance_id: "r-0-1".into(), state: Terminal::Completed, completed_at: at, fingerprint: None },
            Finished {
                instance_id: "r-0-2".into(),
                state: Terminal::Failed { output: "boom".into() },
                completed_at: None,
                fingerprint: None,
            },
        ];
        assert_eq!(finished(completions(rows.clone())), rows);
    }

    #[test]
    fn a_good_request_becomes_a_plan() {
        let spec = RunSpec::try_from(request()).expect("valid");
        assert_eq!(spec.load, Load::closed(5, Duration::from_millis(1000)));
        assert_eq!((spec.runtime.orchestrator_lock_timeout, spec.iterations), (None, None));
        let mut open = request();
        open.load = Some(proto::prepare_request::Load::Open(proto::OpenLoop {
            rate_per_sec: 4.0,
            arrival: proto::Arrival::Poisson as i32,
            phase: 0.25,
            seed: 3,
            max_in_flight: 9,
            stages: vec![],
        }));
        let spec = RunSpec::try_from(open).expect("valid");
        assert_eq!(spec.load, Load::open(4.0, Arrival::Poisson, 9, Duration::from_millis(1000)));
        assert_eq!(spec.spread, Spread { phase: 0.25, seed: 3 });
        let mut staged = request();
        staged.load = Some(proto::prepare_request::Load::Closed(proto::ClosedLoop {
            concurrency: 5,
            stages: vec![
                proto::StagePoint { at_us: 0, value: 1.0 },
                proto::StagePoint { at_us: 1_000_000, value: 9.0 },
            ],
        }));
        let spec = RunSpec::try_from(staged).expect("valid");
        assert!(spec.load.staged && spec.load.follows_a_changing_target());
        assert_eq!((spec.load.max_in_flight, spec.load.plan.value_at(Duration::from_millis(500))), (5, 5.0));
    }

    #[test]
    fn bad_values_are_refused_by_field() {
        type Break = fn(&mut proto::PrepareRequest);
        let cases: Vec<(Break, &str)> = vec![
            (|r| r.run_id = "a-b".into(), "run_id"),
            (|r| r.schema = "x;y".into(), "schema"),
            (|r| r.agent_index = 2, "agent_index"),
            (|r| r.workload = None, "workload"),
            (|r| r.load = None, "load"),
            (
                |r| {
                    r.load =
                        Some(proto::prepare_request::Load::Closed(proto::ClosedLoop { concurrency: 0, stages: vec![] }))
                },
                "concurrency",
            ),
            (
                |r| {
                    r.load = Some(proto::prepare_request::Load::Open(proto::OpenLoop {
                        rate_per_sec: 1.0,
                        arrival: 9,
                        max_in_flight: 1,
                        ..Default::default()
                    }))
                },
                "arrival",
            ),
            (|r| r.duration_ms = 0, "plan"),
            (|r| r.tracking = 0, "tracking"),
            (
                |r| {
                    r.load = Some(proto::prepare_request::Load::Closed(proto::ClosedLoop {
                        concurrency: 1,
                        stages: vec![
                            proto::StagePoint { at_us: 5, value: 1.0 },
                            proto::StagePoint { at_us: 1, value: 1.0 },
                        ],
                    }))
                },
                "stages",
            ),
        ];
        for (break_it, field) in cases {
            let mut r = request();
            break_it(&mut r);
            match RunSpec::try_from(r) {
                Err(AgentError::InvalidRequest { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
