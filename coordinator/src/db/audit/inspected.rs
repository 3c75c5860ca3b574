//! The audit of a store only the agents reach (SQLite, or a schema whose
//! tables another build changed): the same judge over what an agent read
//! through duroxide's client API.

use std::collections::BTreeMap;
use std::time::Instant;

use loadgen_scenarios::Scenario;

use super::query::{InstanceRow, MetricValues};
use super::{AuditInput, AuditOutcome, judge, owners};

/// What an agent read of a store the coordinator cannot reach (SQLite):
/// every instance, the history metrics' samples, and the queues.
#[derive(Debug, Default)]
pub struct Inspected {
    pub rows: Vec<InstanceRow>,
    /// (orchestration, event type, milliseconds).
    pub samples: Vec<(String, String, i64)>,
    pub queued: u64,
}

/// Audit what an agent inspected of its own store against `input`. The
/// client API cannot tell a timer of an ended instance from lost work, so
/// messages left in the queues are a note when every instance ended as
/// expected, and a problem otherwise.
pub fn audit_inspected(found: Inspected, input: &AuditInput) -> AuditOutcome {
    let began = Instant::now();
    let mut audit = judge(&found.rows, input);
    audit.queued = found.queued;
    if found.queued > 0 {
        let text = format!(
            "{} message(s) left in the queues (through the client API, a timer of an ended instance cannot be told from lost work)",
            found.queued
        );
        if audit.anomalies == 0 { audit.notes.push(text) } else { audit.problems.push(text) }
    }
    let mut latencies = BTreeMap::new();
    if let Some(s) = &input.scenario {
        for (info, orchestrations) in owners(s.as_ref()) {
            for m in info.history_metrics {
                let mut values = MetricValues::default();
                for (o, e, ms) in &found.samples {
                    if e == m.event && orchestrations.contains(&o.as_str()) {
                        if *ms < 0 {
                            values.clamped += 1;
                        }
                        values.histogram.record_us((*ms).max(0) as u64 * 1000);
                    }
                }
                latencies.entry(info.name.to_string()).or_insert_with(Vec::new).push((m.name.to_string(), values));
            }
        }
    }
    audit.duration_ms = began.elapsed().as_millis() as u64;
    AuditOutcome { audit, latencies }
}

/// The history events the scenario's metrics read, and where each starts.
pub fn metric_events(s: &dyn Scenario) -> Vec<(String, loadgen_scenarios::MetricStart)> {
    let mut out: Vec<(String, loadgen_scenarios::MetricStart)> = Vec::new();
    for (info, _) in owners(s) {
        for m in info.history_metrics {
            if !out.iter().any(|(e, _)| e == m.event) {
                out.push((m.event.to_string(), m.from));
            }
        }
    }
    out
}
