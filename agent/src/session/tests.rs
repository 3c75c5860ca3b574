//! The session on duroxide's in-memory SQLite store (no Postgres): one run
//! at a time from prepare through a real run to release, and the refusals.

use std::sync::Mutex as StdMutex;

use loadgen_common::proto;
use loadgen_common::tally::{Finish, Interval};

use super::*;

pub(crate) fn agent() -> Agent {
    Agent::new(AgentConfig {
        // Never dialled: these runs keep their state in SQLite.
        database_url: "postgres://unused@127.0.0.1:1/none".into(),
        pool_max: 10,
        hostname: "test".into(),
        run_once: false,
        token: "t".repeat(16),
        tls: None,
        clock: None,
    })
}

/// `ms` of fanout with one runtime on an in-memory SQLite store.
pub(crate) fn sqlite_spec(run_id: &str, ms: u64) -> RunSpec {
    let mut req = loadgen_common::wire::synthetic_prepare_request(run_id, 0, 1, ms);
    req.tracking = proto::Tracking::Agent as i32;
    req.provider = proto::Provider::SqliteMemory as i32;
    RunSpec::try_from(req).expect("a valid spec")
}

/// A sink that keeps what it is handed.
#[derive(Clone, Default)]
struct Kept(Arc<StdMutex<(Vec<Interval>, Option<Finish>)>>);

impl Sink for Kept {
    async fn interval(&mut self, i: Interval) -> bool {
        self.0.lock().expect("kept").0.push(i);
        true
    }
    async fn finish(&mut self, f: Finish) -> bool {
        self.0.lock().expect("kept").1 = Some(f);
        true
    }
    async fn started(&mut self, _ids: Vec<String>) -> bool {
        true
    }
}

#[tokio::test]
async fn one_run_at_a_time_from_prepare_through_run_to_release() {
    let a = agent();
    assert_eq!(a.phase(), Phase::Idle);
    assert_eq!(a.release("none").await.expect("an idle release is a no-op").late_activities, 0);
    let described = a.prepare(sqlite_spec("r1", 800)).await.expect("prepare");
    assert!(described.starts_with("fanout"), "{described}");
    assert_eq!(a.phase(), Phase::Prepared);
    // Another run is refused while this one holds the agent.
    assert!(matches!(a.prepare(sqlite_spec("r2", 800)).await, Err(AgentError::Busy { .. })));
    assert!(matches!(a.release("r2").await, Err(AgentError::Busy { .. })));
    assert!(matches!(a.run("r2", Duration::ZERO, false, Kept::default()), Err(AgentError::Busy { .. })));
    // The run itself: load for 0.8 s on the runtimes it prepared, an
    // interval a second and the finish handed to the sink.
    let kept = Kept::default();
    a.run("r1", Duration::ZERO, false, kept.clone()).expect("run");
    assert_eq!(a.phase(), Phase::Running);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.phase() != Phase::Finished && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.phase(), Phase::Finished);
    a.release("r1").await.expect("release");
    assert_eq!(a.phase(), Phase::Idle);
    let (intervals, finish) = kept.0.lock().expect("kept").clone();
    let finish = finish.expect("a finish");
    assert_eq!(finish.progress_messages, intervals.len() as u64);
    let completed: u64 = intervals.iter().flat_map(|i| i.scenarios.values()).map(|t| t.counts.completed).sum();
    assert!(completed > 0, "fanout completes on SQLite within 0.8 s");
}

#[tokio::test]
async fn what_needs_a_run_says_there_is_none() {
    let a = agent();
    assert!(a.restart_runtime(0, Duration::ZERO).await.is_err());
    // A relay fault without a run (or a relay) is ignored, not a panic.
    a.relay_fault(RelayFault::Partition, Duration::from_millis(10));
    assert!(matches!(a.run("r1", Duration::ZERO, false, Kept::default()), Err(AgentError::UnknownRun { .. })));
}

#[tokio::test]
async fn cluster_tracking_on_a_process_local_store_is_refused_and_leaves_the_agent_idle() {
    let a = agent();
    let mut spec = sqlite_spec("r1", 800);
    spec.tracking = crate::plan::Tracking::Cluster;
    match a.prepare(spec).await {
        Err(AgentError::InvalidRequest { field, .. }) => assert_eq!(field, "tracking"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.phase(), Phase::Idle);
}
