//! The agent's Prometheus endpoint (`--metrics-listen ADDR`): duroxide's
//! own metrics as its runtimes emit them through the `metrics` facade
//! (counters, gauges and histograms, with duroxide's names and labels),
//! each runtime's own counters (duroxide's per-runtime snapshot), and the
//! agent's slice (its run, phase and activity executions), in OpenMetrics
//! text through the Prometheus client.
//!
//! The facade is process-wide: duroxide's metrics are this process's sum
//! over its runtimes; the per-runtime split is the snapshot families.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Bucket bounds for duroxide's histograms (seconds, milliseconds, turns
/// and history sizes alike: one log scale covers them).
const BOUNDS: [f64; 22] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
    1000.0, 5000.0, 10000.0, 60000.0,
];

/// Whether the facade's metrics are kept (only with an endpoint to show them).
static CAPTURE: AtomicBool = AtomicBool::new(false);
/// What the agent says of itself (its slice and runtimes), once it serves.
type Viewer = Box<dyn Fn() -> View + Send + Sync>;
static AGENT: OnceLock<Viewer> = OnceLock::new();

type Labels = Vec<(String, String)>;

/// A histogram kept as fixed buckets.
#[derive(Debug, Default)]
struct Buckets(Mutex<(Vec<u64>, f64, u64)>);

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if b.0.is_empty() {
            b.0 = vec![0; BOUNDS.len() + 1];
        }
        let i = BOUNDS.partition_point(|&x| x < value);
        b.0[i] += 1;
        b.1 += value;
        b.2 += 1;
    }
}

#[derive(Debug, Default)]
struct Store {
    counters: BTreeMap<(String, Labels), Arc<AtomicU64>>,
    gauges: BTreeMap<(String, Labels), Arc<AtomicU64>>,
    histograms: BTreeMap<(String, Labels), Arc<Buckets>>,
}

fn store() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(Mutex::default)
}

fn id(key: &Key) -> (String, Labels) {
    (key.name().to_string(), key.labels().map(|l| (l.key().to_string(), l.value().to_string())).collect())
}

/// The facade's counter `key`, kept when an endpoint shows it.
pub fn counter(key: &Key) -> Counter {
    if !CAPTURE.load(Ordering::Relaxed) {
        return Counter::noop();
    }
    let mut s = store().lock().unwrap_or_else(|p| p.into_inner());
    Counter::from_arc(Arc::clone(s.counters.entry(id(key)).or_default()))
}

/// The facade's gauge `key`, likewise.
pub fn gauge(key: &Key) -> Gauge {
    if !CAPTURE.load(Ordering::Relaxed) {
        return Gauge::noop();
    }
    let mut s = store().lock().unwrap_or_else(|p| p.into_inner());
    Gauge::from_arc(Arc::clone(s.gauges.entry(id(key)).or_default()))
}

/// The facade's histogram `key`, likewise.
pub fn histogram(key: &Key) -> Histogram {
    if !CAPTURE.load(Ordering::Relaxed) {
        return Histogram::noop();
    }
    let mut s = store().lock().unwrap_or_else(|p| p.into_inner());
    Histogram::from_arc(Arc::clone(s.histograms.entry(id(key)).or_default()))
}

/// Serve the endpoint on `address` (kept until the returned server drops).
pub fn listen(address: SocketAddr) -> Result<loadgen_common::http::Server, String> {
    CAPTURE.store(true, Ordering::Relaxed);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition));
    loadgen_common::http::Server::start(address, move || {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::warn!(error = %e, "the metrics could not be encoded");
        }
        out
    })
    .map_err(|e| format!("--metrics-listen {address}: cannot listen: {e}"))
}

/// What the agent's metrics endpoint shows of it.
#[derive(Debug, Default)]
pub struct View {
    pub run_id: String,
    pub phase: &'static str,
    /// Its index among the run's agents.
    pub index: Option<u32>,
    /// Its share of the load now: in flight (closed loop) or starts/s (open).
    pub share: f64,
    /// Activity executions of the run so far.
    pub activities: u64,
    pub runtimes: Vec<duroxide::runtime::observability::MetricsSnapshot>,
}

/// Show what `view` says of the agent (once; the process has one agent).
pub fn attach(view: impl Fn() -> View + Send + Sync + 'static) {
    let _ = AGENT.set(Box::new(view));
}

#[derive(Debug)]
struct Exposition;

impl Collector for Exposition {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        encode_facade(&mut e)?;
        // Before the agent serves (a scrape right after it started) it is idle.
        let view = AGENT.get().map(|v| v()).unwrap_or_else(|| View { phase: "idle", ..Default::default() });
        encode_agent(&view, &mut e)
    }
}

/// The name OpenMetrics gives a counter (the client adds `_total`).
fn counter_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

fn encode_facade(e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let s = store().lock().unwrap_or_else(|p| p.into_inner());
    let mut names: Vec<&String> = s.counters.keys().map(|(n, _)| n).collect();
    names.dedup();
    for name in names {
        let mut m = e.encode_descriptor(counter_name(name), "duroxide (metrics facade)", None, MetricType::Counter)?;
        for ((_, labels), v) in s.counters.range((name.clone(), Vec::new())..).take_while(|((n, _), _)| n == name) {
            ConstCounter::new(v.load(Ordering::Relaxed)).encode(m.encode_family(labels)?)?;
        }
    }
    let mut names: Vec<&String> = s.gauges.keys().map(|(n, _)| n).collect();
    names.dedup();
    for name in names {
        let mut m = e.encode_descriptor(name, "duroxide (metrics facade)", None, MetricType::Gauge)?;
        for ((_, labels), v) in s.gauges.range((name.clone(), Vec::new())..).take_while(|((n, _), _)| n == name) {
            ConstGauge::new(f64::from_bits(v.load(Ordering::Relaxed))).encode(m.encode_family(labels)?)?;
        }
    }
    let mut names: Vec<&String> = s.histograms.keys().map(|(n, _)| n).collect();
    names.dedup();
    for name in names {
        let mut m = e.encode_descriptor(name, "duroxide (metrics facade)", None, MetricType::Histogram)?;
        for ((_, labels), h) in s.histograms.range((name.clone(), Vec::new())..).take_while(|((n, _), _)| n == name) {
            let (counts, sum, count) = h.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let counts = if counts.is_empty() { vec![0; BOUNDS.len() + 1] } else { counts };
            let buckets: Vec<(f64, u64)> = BOUNDS.iter().copied().chain([f64::MAX]).zip(counts).collect();
            m.encode_family(labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)?;
        }
    }
    Ok(())
}

fn encode_agent(v: &View, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let info = vec![
        ("run_id", v.run_id.clone()),
        ("phase", v.phase.to_string()),
        ("build", env!("LOADGEN_DUROXIDE_PG_BUILD").to_string()),
        ("agent", v.index.map(|i| i.to_string()).unwrap_or_default()),
    ];
    e.encode_descriptor("loadgen_agent", "This agent and the run it serves", None, MetricType::Info)?
        .encode_info(&info)?;
    ConstGauge::new(v.runtimes.len() as u64).encode(e.encode_descriptor(
        "loadgen_agent_runtimes",
        "duroxide runtimes this agent runs now",
        None,
        MetricType::Gauge,
    )?)?;
    ConstCounter::new(v.activities).encode(e.encode_descriptor(
        "loadgen_agent_activities_executed",
        "Activity executions of this run in this agent",
        None,
        MetricType::Counter,
    )?)?;
    ConstGauge::new(v.share).encode(e.encode_descriptor(
        "loadgen_agent_share",
        "This agent's share of the load: in flight (closed loop) or starts/s (open loop)",
        None,
        MetricType::Gauge,
    )?)?;
    type Pick = fn(&duroxide::runtime::observability::MetricsSnapshot) -> u64;
    let families: [(&str, &str, Pick); 7] = [
        ("loadgen_agent_runtime_orchestrations_started", "Orchestrations started, per runtime", |s| s.orch_starts),
        ("loadgen_agent_runtime_orchestrations_completed", "Orchestrations completed, per runtime", |s| {
            s.orch_completions
        }),
        ("loadgen_agent_runtime_orchestrations_failed", "Orchestrations failed, per runtime", |s| s.orch_failures),
        ("loadgen_agent_runtime_activities_succeeded", "Activities succeeded, per runtime", |s| s.activity_success),
        ("loadgen_agent_runtime_orchestration_items_fetched", "Orchestration items fetched, per runtime", |s| {
            s.orch_dispatcher_items_fetched
        }),
        ("loadgen_agent_runtime_work_items_fetched", "Work items fetched, per runtime", |s| {
            s.worker_dispatcher_items_fetched
        }),
        ("loadgen_agent_runtime_provider_errors", "Provider errors, per runtime", |s| s.provider_errors),
    ];
    for (name, help, pick) in families {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (i, s) in v.runtimes.iter().enumerate() {
            ConstCounter::new(pick(s)).encode(m.encode_family(&[("runtime", i.to_string())])?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_values_fall_into_the_first_bound_at_or_above_them() {
        let b = Buckets::default();
        for v in [0.0005, 0.001, 3.0, 1e9] {
            b.record(v);
        }
        let (counts, sum, n) = b.0.lock().expect("lock").clone();
        assert_eq!((counts[0], counts[11], counts[BOUNDS.len()], n), (2, 1, 1, 4));
        assert!((sum - (1e9 + 3.0015)).abs() < 1e-3);
        assert_eq!(counter_name("duroxide_activity_executions_total"), "duroxide_activity_executions");
        assert_eq!(
            counter_name("duroxide_worker_dispatcher_items_fetched"),
            "duroxide_worker_dispatcher_items_fetched"
        );
    }
}
