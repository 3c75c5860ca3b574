//! Provider errors as duroxide's runtimes report them.
//!
//! duroxide emits metrics through the `metrics` facade (a no-op without a
//! recorder). The agent installs this small recorder, which keeps one counter
//! per `duroxide_provider_errors_total{operation, error_type}` and ignores
//! everything else, so a run can say which provider calls failed and were
//! retried (deadlocks, timeouts, lost connections) instead of hiding them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

const PROVIDER_ERRORS: &str = "duroxide_provider_errors_total";

fn counters() -> &'static Mutex<BTreeMap<String, Arc<AtomicU64>>> {
    static COUNTERS: OnceLock<Mutex<BTreeMap<String, Arc<AtomicU64>>>> = OnceLock::new();
    COUNTERS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Counts provider errors; every other metric is dropped.
#[derive(Debug)]
struct ProviderErrorRecorder;

impl Recorder for ProviderErrorRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() != PROVIDER_ERRORS {
            return crate::exposition::counter(key);
        }
        let label = key.labels().map(|l| l.value().to_string()).collect::<Vec<_>>().join("/");
        let mut map = counters().lock().unwrap_or_else(|p| p.into_inner());
        Counter::from_arc(map.entry(label).or_default().clone())
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        crate::exposition::gauge(key)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        crate::exposition::histogram(key)
    }
}

/// Install the recorder (once per process; later calls do nothing).
pub fn install() {
    if metrics::set_global_recorder(ProviderErrorRecorder).is_err() {
        tracing::debug!("a metrics recorder was already installed");
    }
}

/// Count one retry duroxide-pg announced in its log (see
/// `loadgen_common::startup::init_tracing_counting_retries`), keyed
/// "operation/retried: kind" with the error reduced to its kind.
pub fn count_retry(operation: &str, error: &str) {
    let e = error.to_ascii_lowercase();
    let kind = if e.contains("deadlock") {
        "deadlock"
    } else if e.contains("serializ") {
        "serialization failure"
    } else if e.contains("timed out") || e.contains("timeout") {
        "timeout"
    } else if e.contains("pool") {
        "pool"
    } else if e.contains("connection") || e.contains("i/o") || e.contains("io error") {
        "connection"
    } else {
        "other"
    };
    let key = format!("{}/retried: {kind}", if operation.is_empty() { "unknown" } else { operation });
    let mut map = counters().lock().unwrap_or_else(|p| p.into_inner());
    map.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
}

/// Provider errors and retries so far, keyed "operation/error_type" (from
/// duroxide's metric) or "operation/retried: kind" (from duroxide-pg's log).
pub fn provider_errors() -> BTreeMap<String, u64> {
    let map = counters().lock().unwrap_or_else(|p| p.into_inner());
    map.iter().map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect()
}

/// `now - before`, per key.
pub fn since(before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    provider_errors()
        .into_iter()
        .map(|(k, n)| {
            let b = before.get(&k).copied().unwrap_or(0);
            (k, n.saturating_sub(b))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_provider_errors_by_operation_and_type_only() {
        install();
        let before = provider_errors();
        metrics::counter!(PROVIDER_ERRORS, "operation" => "fetch_orchestration_item", "error_type" => "connection")
            .increment(2);
        metrics::counter!("duroxide_activity_executions_total", "outcome" => "success").increment(5);
        let delta = since(&before);
        assert_eq!(delta.get("fetch_orchestration_item/connection"), Some(&2));
        assert_eq!(delta.len(), 1, "{delta:?}");
        count_retry("fetch_orchestration_item", "Database error: deadlock detected");
        count_retry("ack_orchestration_item", "pool timed out while waiting for an open connection");
        let delta = since(&before);
        assert_eq!(delta.get("fetch_orchestration_item/retried: deadlock"), Some(&1));
        assert_eq!(delta.get("ack_orchestration_item/retried: timeout"), Some(&1));
    }
}
