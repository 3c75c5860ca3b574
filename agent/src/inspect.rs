//! The run's instances as the provider shows them, read through duroxide's
//! client (management) API, for the coordinator's per-instance audit of a
//! store it cannot read itself: SQLite lives in this process. What it reads
//! matches the coordinator's own SQL audit field for field (status and
//! output of the current execution, executions, history events by type over
//! all of them) so one judge holds both to the scenario's expectations.
//!
//! It costs a few calls per instance (info, executions, each execution's
//! history), which is fine in-process and for the short runs SQLite serves.

use std::collections::BTreeMap;

use duroxide::Client;

use crate::scenario::MetricStart;
use crate::scenario::expect::{Observed, SHORT_OUTPUT, md5_hex};

/// One instance as the store shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceState {
    pub id: String,
    pub orchestration: String,
    pub observed: Observed,
}

/// A history event's latency for a scenario's metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub orchestration: String,
    pub event: String,
    pub ms: i64,
}

/// What the audit needs of the store.
#[derive(Clone, Debug, Default)]
pub struct Inspection {
    pub instances: Vec<InstanceState>,
    pub samples: Vec<Sample>,
    /// Unlocked messages left in the queues (the whole store: on SQLite,
    /// this run's only).
    pub queued: u64,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// The latency of `event` (its JSON as stored) from where `from` says.
fn metric_ms(event: &serde_json::Value, from: MetricStart) -> Option<i64> {
    let at = event.get("timestamp_ms")?.as_i64()?;
    let start = match from {
        MetricStart::FireAt => event.get("fire_at_ms")?.as_i64()?,
        MetricStart::RaisedAt => event.get("data")?.as_str()?.split_once('|')?.0.parse().ok()?,
    };
    Some(at - start)
}

/// Every instance of `run_id` (ids `<run>-...`), with the latencies of the
/// history events in `metrics`.
pub async fn inspect(client: &Client, run_id: &str, metrics: &[(String, MetricStart)]) -> Result<Inspection, String> {
    let prefix = format!("{run_id}-");
    let mut ids: Vec<String> =
        client.list_all_instances().await.map_err(|e| err("listing instances", e))?.into_iter().collect();
    ids.retain(|id| id.starts_with(&prefix));
    ids.sort();
    let mut out = Inspection::default();
    for id in ids {
        let info = client.get_instance_info(&id).await.map_err(|e| err("reading an instance", e))?;
        let executions = client.list_executions(&id).await.map_err(|e| err("listing executions", e))?;
        let mut events: BTreeMap<String, u64> = BTreeMap::new();
        for exec in &executions {
            let history = client.read_execution_history(&id, *exec).await.map_err(|e| err("reading a history", e))?;
            for e in history {
                let value = serde_json::to_value(&e).map_err(|e| err("reading an event", e))?;
                let Some(kind) = value.get("type").and_then(|t| t.as_str()) else { continue };
                *events.entry(kind.to_string()).or_default() += 1;
                if let Some((_, from)) = metrics.iter().find(|(name, _)| name == kind)
                    && let Some(ms) = metric_ms(&value, *from)
                {
                    out.samples.push(Sample {
                        orchestration: info.orchestration_name.clone(),
                        event: kind.to_string(),
                        ms,
                    });
                }
            }
        }
        let status = match info.status.as_str() {
            "Unknown" => String::new(),
            s => s.to_string(),
        };
        // As the SQL audit reads it: no output is no text, length 0, no md5.
        let (output, output_len, output_md5) = match info.output {
            Some(o) => ((o.len() <= SHORT_OUTPUT).then(|| o.clone()), o.len() as u64, md5_hex(&o)),
            None => (None, 0, String::new()),
        };
        out.instances.push(InstanceState {
            id,
            orchestration: info.orchestration_name,
            observed: Observed { status, output, output_len, output_md5, executions: executions.len() as u64, events },
        });
    }
    let q = client.get_queue_depths().await.map_err(|e| err("reading the queues", e))?;
    out.queued = (q.orchestrator_queue + q.worker_queue) as u64;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_read_the_stored_event_fields() {
        let timer = serde_json::json!({"type": "TimerFired", "timestamp_ms": 1_050, "fire_at_ms": 1_000});
        assert_eq!(metric_ms(&timer, MetricStart::FireAt), Some(50));
        let event = serde_json::json!({"type": "ExternalEvent", "timestamp_ms": 2_030, "data": "2000|payload"});
        assert_eq!(metric_ms(&event, MetricStart::RaisedAt), Some(30));
        assert_eq!(metric_ms(&serde_json::json!({"data": "no-bar"}), MetricStart::RaisedAt), None);
    }
}
