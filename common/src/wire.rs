//! The one place where what agents measure crosses the wire: [`Interval`]s as
//! `Progress` messages, [`Finish`] as `AgentResult`, [`Counts`] as `Counts`.
//! Histograms are encoded here (HdrHistogram V2) and decoded here, once.
//! Decoding checks what a peer could get wrong and says what.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::histogram::{HistogramError, LatencyHistogram};
use crate::ledger::ActivityRun;
use crate::proto;
use crate::tally::{Counts, Finish, Histograms, Interval, Tally};

/// A message from a peer that does not make sense.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("scenario {scenario:?}: {source}")]
    Histogram { scenario: String, source: HistogramError },
    #[error("a scenario delta without a scenario name")]
    NoScenario,
    #[error("scenario {0:?} appears twice in one progress message")]
    Duplicate(String),
}

impl From<&proto::Counts> for Counts {
    fn from(c: &proto::Counts) -> Self {
        Counts {
            launched: c.launched,
            completed: c.completed,
            failed_infrastructure: c.failed_infrastructure,
            failed_configuration: c.failed_configuration,
            failed_application: c.failed_application,
            failed_poison: c.failed_poison,
            start_errors: c.start_errors,
            unfinished: c.unfinished,
            activities: c.activities,
            latency_clamped: c.latency_clamped,
            late: c.late,
            dropped: c.dropped,
            expected_failures: c.expected_failures,
            unexpected_outcomes: c.unexpected_outcomes,
            saturated: c.saturated,
            // Agent-level, carried by `Progress` itself.
            status_queries: 0,
            status_query_errors: 0,
        }
    }
}

impl From<&Counts> for proto::Counts {
    fn from(c: &Counts) -> Self {
        proto::Counts {
            launched: c.launched,
            completed: c.completed,
            failed_infrastructure: c.failed_infrastructure,
            failed_configuration: c.failed_configuration,
            failed_application: c.failed_application,
            failed_poison: c.failed_poison,
            start_errors: c.start_errors,
            unfinished: c.unfinished,
            activities: c.activities,
            latency_clamped: c.latency_clamped,
            late: c.late,
            dropped: c.dropped,
            expected_failures: c.expected_failures,
            unexpected_outcomes: c.unexpected_outcomes,
            saturated: c.saturated,
        }
    }
}

/// An interval as the agent sends it.
pub fn encode_interval(i: &Interval) -> proto::Progress {
    let scenarios = i
        .scenarios
        .iter()
        .map(|(name, t)| proto::ScenarioDelta {
            scenario: name.clone(),
            counts: Some((&t.counts).into()),
            e2e_latency: t.hist.e2e.encode(),
            start_latency: t.hist.start.encode(),
            observed_latency: t.hist.observed.encode(),
            // Closed-loop runs have no intended starts: send no bytes at all.
            intended_latency: if t.hist.intended.count() > 0 { t.hist.intended.encode() } else { Vec::new() },
            observation_delay: if t.hist.observation.count() > 0 { t.hist.observation.encode() } else { Vec::new() },
            start_lateness: if t.hist.lateness.count() > 0 { t.hist.lateness.encode() } else { Vec::new() },
            facts: t.facts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        })
        .collect();
    proto::Progress {
        seq: i.seq,
        elapsed_ms: i.elapsed_ms,
        in_flight: i.in_flight,
        rss_bytes: i.rss_bytes,
        cpu_ms: i.cpu_ms,
        scenarios,
        status_queries: i.status_queries,
        status_query_errors: i.status_query_errors,
        unix_micros: i.unix_micros,
        provider_errors: i.provider_errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        activity_runs: encode_runs(&i.activity_runs),
        activity_runs_dropped: i.activity_runs_dropped,
    }
}

/// Lines of the activity ledger as they cross the wire.
pub fn encode_runs(runs: &[ActivityRun]) -> Vec<proto::ActivityRun> {
    runs.iter()
        .map(|r| proto::ActivityRun {
            instance_id: r.instance.clone(),
            execution_id: r.execution,
            activity: r.activity.clone(),
            input_md5: r.input_md5.clone(),
            ok: r.ok,
        })
        .collect()
}

/// Lines of the activity ledger as the coordinator reads them.
pub fn decode_runs(runs: Vec<proto::ActivityRun>) -> Vec<ActivityRun> {
    runs.into_iter()
        .map(|r| ActivityRun {
            instance: r.instance_id,
            execution: r.execution_id,
            activity: r.activity,
            input_md5: r.input_md5,
            ok: r.ok,
        })
        .collect()
}

impl TryFrom<&proto::Progress> for Interval {
    type Error = WireError;

    fn try_from(p: &proto::Progress) -> Result<Self, WireError> {
        let mut scenarios = BTreeMap::new();
        for d in &p.scenarios {
            if d.scenario.is_empty() {
                return Err(WireError::NoScenario);
            }
            let decode = |bytes: &[u8]| {
                LatencyHistogram::decode(bytes)
                    .map_err(|source| WireError::Histogram { scenario: d.scenario.clone(), source })
            };
            let tally = Tally {
                counts: d.counts.as_ref().map(Counts::from).unwrap_or_default(),
                hist: Histograms {
                    e2e: decode(&d.e2e_latency)?,
                    observed: decode(&d.observed_latency)?,
                    start: decode(&d.start_latency)?,
                    intended: decode(&d.intended_latency)?,
                    observation: decode(&d.observation_delay)?,
                    lateness: decode(&d.start_lateness)?,
                },
                facts: d.facts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            };
            if scenarios.insert(d.scenario.clone(), tally).is_some() {
                return Err(WireError::Duplicate(d.scenario.clone()));
            }
        }
        Ok(Interval {
            seq: p.seq,
            elapsed_ms: p.elapsed_ms,
            in_flight: p.in_flight,
            rss_bytes: p.rss_bytes,
            cpu_ms: p.cpu_ms,
            scenarios,
            status_queries: p.status_queries,
            status_query_errors: p.status_query_errors,
            unix_micros: p.unix_micros,
            provider_errors: p.provider_errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            activity_runs: decode_runs(p.activity_runs.clone()),
            activity_runs_dropped: p.activity_runs_dropped,
        })
    }
}

impl From<&Finish> for proto::AgentResult {
    fn from(f: &Finish) -> Self {
        proto::AgentResult {
            elapsed_ms: f.elapsed_ms,
            provider_errors: f.provider_errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            progress_messages: f.progress_messages,
        }
    }
}

impl From<&proto::AgentResult> for Finish {
    fn from(r: &proto::AgentResult) -> Self {
        Finish {
            elapsed_ms: r.elapsed_ms,
            provider_errors: r.provider_errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            progress_messages: r.progress_messages,
        }
    }
}

/// The coordinator's completions (cluster tracking) as the driver's rows.
pub fn finished(c: proto::Completions) -> Vec<crate::tracker::Finished> {
    c.items
        .into_iter()
        .map(|i| crate::tracker::Finished {
            instance_id: i.instance_id,
            state: if i.failed {
                crate::tracker::Terminal::Failed { output: i.output }
            } else {
                crate::tracker::Terminal::Completed
            },
            completed_at: i.completed_at_us.and_then(chrono::DateTime::from_timestamp_micros),
            fingerprint: None,
        })
        .collect()
}

/// Rows of a completion query as the wire's completions (the coordinator's side).
pub fn completions(rows: Vec<crate::tracker::Finished>) -> proto::Completions {
    let items = rows
        .into_iter()
        .map(|f| {
            let (failed, output) = match f.state {
                crate::tracker::Terminal::Completed => (false, String::new()),
                crate::tracker::Terminal::Failed { output } => (true, output),
            };
            proto::Completion {
                instance_id: f.instance_id,
                failed,
                output,
                completed_at_us: f.completed_at.map(|t| t.timestamp_micros()),
            }
        })
        .collect();
    proto::Completions { items }
}

/// A Prepare request for a synthetic agent: `duration_ms` of fanout with
/// defaults (for tests and the fan-in benchmark, which have no schema).
pub fn synthetic_prepare_request(run_id: &str, index: u32, agents: u32, duration_ms: u64) -> proto::PrepareRequest {
    proto::PrepareRequest {
        run_id: run_id.into(),
        schema: format!("loadgen_{run_id}"),
        agent_index: index,
        agent_count: agents,
        workload: Some(proto::Workload { scenario: "fanout".into(), options: Default::default(), seed: 1 }),
        runtime: Some(proto::RuntimeSettings {
            runtimes: 1,
            orchestration_concurrency: 1,
            worker_concurrency: 1,
            poll_interval_ms: 100,
            ..Default::default()
        }),
        load: Some(proto::prepare_request::Load::Closed(proto::ClosedLoop { concurrency: 1, stages: vec![] })),
        duration_ms,
        drain_timeout_ms: 1000,
        completion_poll_ms: 50,
        tracking: proto::Tracking::Cluster as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip_through_the_wire() {
        let mut t = Tally {
            counts: Counts {
                launched: 4,
                completed: 3,
                expected_failures: 1,
                failed_application: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        t.hist.e2e.record_us(1500);
        t.hist.start.record_us(200);
        t.fact("events_raised", 7);
        let i = Interval {
            seq: 3,
            elapsed_ms: 3000,
            in_flight: 5,
            rss_bytes: 1 << 20,
            cpu_ms: 40,
            scenarios: BTreeMap::from([("fanout".to_string(), t)]),
            status_queries: 20,
            status_query_errors: 1,
            unix_micros: 1_796_000_000_000_000,
            provider_errors: BTreeMap::from([("ack_worker/deadlock".to_string(), 2)]),
            activity_runs: vec![ActivityRun {
                instance: "r-0-1".into(),
                execution: 2,
                activity: "Work".into(),
                input_md5: "c4ca4238a0b923820dcc509a6f75849b".into(),
                ok: false,
            }],
            activity_runs_dropped: 3,
        };
        let wire = encode_interval(&i);
        assert!(wire.scenarios[0].intended_latency.is_empty(), "closed loop sends no intended histogram");
        assert!(wire.scenarios[0].start_lateness.is_empty(), "closed loop sends no lateness histogram");
        let back = Interval::try_from(&wire).expect("decode");
        assert_eq!(back.provider_errors, i.provider_errors);
        assert_eq!((&back.activity_runs, back.activity_runs_dropped), (&i.activity_runs, 3));
        let b = &back.scenarios["fanout"];
        assert_eq!(b.counts, i.scenarios["fanout"].counts);
        assert_eq!((b.hist.e2e.count(), b.hist.start.count(), b.hist.intended.count()), (1, 1, 0));
        assert_eq!(b.facts.get("events_raised"), Some(&7));
        // An open-loop interval carries its starts' lateness.
        let mut open = i.clone();
        if let Some(t) = open.scenarios.get_mut("fanout") {
            t.hist.lateness.record_us(12_000);
            t.hist.intended.record_us(2_000);
        }
        let late = Interval::try_from(&encode_interval(&open)).expect("decode");
        let l = late.scenarios["fanout"].hist.lateness.summary();
        assert!(l.count == 1 && (12_000..12_020).contains(&l.max_us), "{l:?}");
        let total = back.counts();
        assert_eq!((total.launched, total.status_queries, total.status_query_errors), (4, 20, 1));
    }

    #[test]
    fn nonsense_is_refused_by_name() {
        let delta = |name: &str| proto::ScenarioDelta { scenario: name.into(), ..Default::default() };
        let dup = proto::Progress { scenarios: vec![delta("a"), delta("a")], ..Default::default() };
        assert!(matches!(Interval::try_from(&dup), Err(WireError::Duplicate(n)) if n == "a"));
        let unnamed = proto::Progress { scenarios: vec![delta("")], ..Default::default() };
        assert!(matches!(Interval::try_from(&unnamed), Err(WireError::NoScenario)));
        let mut bad = delta("x");
        bad.e2e_latency = b"garbage".to_vec();
        let e = Interval::try_from(&proto::Progress { scenarios: vec![bad], ..Default::default() }).expect_err("bad");
        assert!(e.to_string().starts_with("scenario \"x\": histogram bytes do not decode"), "{e}");
    }
}
