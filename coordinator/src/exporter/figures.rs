//! What the endpoint shows: the cluster-wide figures of the run as the
//! coordinator last saw them (updated once a second from the live view, and
//! from the result at the end, so the final counters equal the JSON), and
//! their encoding by the Prometheus client.

use std::collections::BTreeMap;

use loadgen_common::histogram::{LatencyHistogram, LatencySummary};
use loadgen_common::tally::Counts;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::model::live::Frame;
use crate::model::{DbSample, RunReport};

/// Latency bucket bounds, microseconds: 1 ms to 5 min.
pub const BOUNDS_US: [u64; 17] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// The failure categories, as labels, each with its count.
fn categories(c: &Counts) -> [(&'static str, u64); 5] {
    [
        ("infrastructure", c.failed_infrastructure),
        ("configuration", c.failed_configuration),
        ("application", c.failed_application),
        ("poison", c.failed_poison),
        ("start_error", c.start_errors),
    ]
}

/// A histogram as the exposition carries it.
#[derive(Debug, Default, Clone)]
pub struct Buckets {
    pub sum_s: f64,
    pub count: u64,
    /// (upper bound in seconds, samples in this bucket); the last is +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl Buckets {
    fn of(h: &LatencyHistogram) -> Self {
        let counts = h.bucket_counts(&BOUNDS_US);
        let bounds = BOUNDS_US.iter().map(|&b| b as f64 / 1e6).chain(std::iter::once(f64::MAX));
        Buckets { sum_s: h.sum_us() / 1e6, count: h.count(), buckets: bounds.zip(counts).collect() }
    }
}

/// The run's figures.
#[derive(Debug, Default)]
pub struct Figures {
    pub run_id: String,
    pub profile: String,
    pub scenario: String,
    pub builds: String,
    pub elapsed_s: f64,
    pub finished: bool,
    pub passed: Option<bool>,
    /// `--abort-on-fail` stopped the run.
    pub aborted: bool,
    /// Totals per scenario.
    pub scenarios: BTreeMap<String, Counts>,
    pub in_flight: u64,
    /// What the plan offers now, and whether it is a rate.
    pub offered: Option<(f64, bool)>,
    /// The latest merged second: starts and completions.
    pub starts_per_sec: f64,
    pub completions_per_sec: f64,
    pub latency: Buckets,
    /// Exact p50, p99, p999 of the merged histogram, microseconds.
    pub quantiles_us: [u64; 3],
    pub observation: Buckets,
    pub db: Option<DbSample>,
    pub deadlocks: u64,
    pub provider_retries: BTreeMap<String, u64>,
    pub agents_up: u64,
    pub agents_lost: u64,
    /// Per fault kind: applied so far, and active now.
    pub faults: BTreeMap<String, (u64, u64)>,
    /// The result's merged counts, once it is assembled (they hold what no
    /// scenario does: activities executed after the finish).
    pub merged: Option<Counts>,
}

impl Figures {
    /// A new run starts: its figures from nothing.
    pub fn start(&mut self, run_id: &str, profile: &str, scenario: &str, builds: &str, agents: usize) {
        *self = Figures {
            run_id: run_id.into(),
            profile: profile.into(),
            scenario: scenario.into(),
            builds: builds.into(),
            agents_up: agents as u64,
            ..Default::default()
        };
    }

    /// The live view's second.
    pub fn frame(&mut self, f: &Frame<'_>) {
        self.elapsed_s = f.elapsed_s;
        self.scenarios = f.scenarios.iter().map(|(k, c)| (k.to_string(), c.clone())).collect();
        self.in_flight = f.in_flight;
        self.offered = f.offered_now;
        if let Some(p) = &f.merged_last {
            self.starts_per_sec = p.launched as f64;
            self.completions_per_sec = p.orch_per_sec;
        }
        self.latency = Buckets::of(f.headline);
        self.quantiles_us = [0.5, 0.99, 0.999].map(|q| f.headline.quantile_us(q));
        self.observation = Buckets::of(f.observation);
        if let Some(db) = f.db {
            if self.db.as_ref().is_none_or(|d| d.t_s != db.t_s) {
                self.deadlocks += db.deadlocks;
            }
            self.db = Some(db.clone());
        }
        self.provider_retries = f.provider_errors.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        self.agents_up = f.rows.iter().filter(|r| r.alive).count() as u64;
        self.agents_lost = f.rows.len() as u64 - self.agents_up;
    }

    /// A fault began (`true`) or ended.
    pub fn fault(&mut self, kind: &str, began: bool) {
        let (applied, active) = self.faults.entry(kind.to_string()).or_default();
        if began {
            *applied += 1;
            *active += 1;
        } else {
            *active = active.saturating_sub(1);
        }
    }

    /// The result: the counters become the JSON's, exactly.
    pub fn result(&mut self, r: &RunReport) {
        for s in &r.scenarios {
            self.scenarios.insert(s.name.clone(), s.section.counts.clone());
        }
        // Agent-level counts (completion queries) are not any scenario's.
        self.elapsed_s = r.merged.elapsed_s;
        self.in_flight = 0;
        self.offered = None;
        let h: &LatencySummary = r.merged.headline_latency();
        self.quantiles_us = [h.p50_us, h.p99_us, h.p999_us];
        self.provider_retries = r.provider_errors.clone();
        self.merged = Some(r.merged.counts.clone());
        self.agents_lost = r.lost_agents.len() as u64;
        self.agents_up = (r.agents.len() as u64).saturating_sub(self.agents_lost);
        self.finished = true;
        self.passed = Some(r.passed);
        self.aborted = r.aborted.is_some();
    }

    /// Totals over every scenario.
    pub fn total(&self) -> Counts {
        if let Some(m) = &self.merged {
            return m.clone();
        }
        let mut t = Counts::default();
        for c in self.scenarios.values() {
            t.add(c);
        }
        t
    }
}

/// One metric family of constant values (counters or gauges).
fn family<V: Copy>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    counter: bool,
    series: &[(Vec<(&str, String)>, V)],
) -> Result<(), std::fmt::Error>
where
    ConstCounter<V>: EncodeMetric,
    ConstGauge<V>: EncodeMetric,
{
    let kind = if counter { MetricType::Counter } else { MetricType::Gauge };
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    let put = |v: V, m: MetricEncoder<'_>| {
        if counter { ConstCounter::new(v).encode(m) } else { ConstGauge::new(v).encode(m) }
    };
    if let [(labels, v)] = series
        && labels.is_empty()
    {
        return put(*v, m);
    }
    for (labels, v) in series {
        put(*v, m.encode_family(labels)?)?;
    }
    Ok(())
}

fn histogram(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, b: &Buckets) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(b.sum_s, b.count, &b.buckets, None)
}

/// The figures behind a lock, encoded on each scrape.
#[derive(Debug, Default)]
pub struct Shared(pub std::sync::Mutex<Figures>);

impl Collector for Shared {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        encode(&f, &mut e)
    }
}

type Series<V> = Vec<(Vec<(&'static str, String)>, V)>;

fn per_scenario(f: &Figures, pick: impl Fn(&Counts) -> u64) -> Series<u64> {
    f.scenarios.iter().map(|(s, c)| (vec![("scenario", s.clone())], pick(c))).collect()
}

fn encode(f: &Figures, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let info = vec![
        ("run_id", f.run_id.clone()),
        ("profile", f.profile.clone()),
        ("scenario", f.scenario.clone()),
        ("builds", f.builds.clone()),
        ("tool_version", loadgen_common::TOOL_VERSION.to_string()),
    ];
    e.encode_descriptor("loadgen_run", "The run being measured", None, MetricType::Info)?.encode_info(&info)?;
    family(e, "loadgen_run_elapsed_seconds", "Seconds since the common start", false, &[(vec![], f.elapsed_s)])?;
    family(e, "loadgen_run_finished", "1 once the result is assembled", false, &[(vec![], u64::from(f.finished))])?;
    if let Some(passed) = f.passed {
        family(e, "loadgen_run_passed", "1 when every gate passed", false, &[(vec![], u64::from(passed))])?;
        let help = "1 when --abort-on-fail stopped the run";
        family(e, "loadgen_run_aborted", help, false, &[(vec![], u64::from(f.aborted))])?;
    }
    let s = "Orchestrations started (start call succeeded)";
    family(e, "loadgen_orchestrations_started", s, true, &per_scenario(f, |c| c.launched))?;
    family(e, "loadgen_orchestrations_completed", "Orchestrations completed", true, &per_scenario(f, |c| c.completed))?;
    let failed: Series<u64> = f
        .scenarios
        .iter()
        .flat_map(|(s, c)| categories(c).map(|(cat, n)| (vec![("scenario", s.clone()), ("category", cat.into())], n)))
        .collect();
    family(e, "loadgen_orchestrations_failed", "Orchestrations failed, by failure category", true, &failed)?;
    let total = f.total();
    family(
        e,
        "loadgen_activities_executed",
        "Activity executions, counted where they ran",
        true,
        &[(vec![], total.activities)],
    )?;
    family(e, "loadgen_in_flight", "Orchestrations in flight", false, &[(vec![], f.in_flight)])?;
    if let Some((v, rate)) = f.offered {
        let mode = if rate { "rate" } else { "in_flight" };
        family(
            e,
            "loadgen_offered",
            "What the plan offers now: starts/s (rate) or in flight",
            false,
            &[(vec![("mode", mode.into())], v)],
        )?;
    }
    family(e, "loadgen_starts_per_second", "Starts in the latest merged second", false, &[(vec![], f.starts_per_sec)])?;
    family(
        e,
        "loadgen_completions_per_second",
        "Completions in the latest merged second",
        false,
        &[(vec![], f.completions_per_sec)],
    )?;
    histogram(e, "loadgen_latency_seconds", "Headline latency, merged over every agent", &f.latency)?;
    let q: Series<f64> = ["0.5", "0.99", "0.999"]
        .into_iter()
        .zip(f.quantiles_us)
        .map(|(q, us)| (vec![("quantile", q.to_string())], us as f64 / 1e6))
        .collect();
    family(e, "loadgen_latency_quantile_seconds", "Exact quantiles of the merged HDR histogram", false, &q)?;
    histogram(
        e,
        "loadgen_observation_delay_seconds",
        "From the terminal status until the agent saw it",
        &f.observation,
    )?;
    encode_db(f, e)?;
    let agents =
        vec![(vec![("state", "up".to_string())], f.agents_up), (vec![("state", "lost".to_string())], f.agents_lost)];
    family(e, "loadgen_agents", "Agents taking part, by state", false, &agents)?;
    let applied: Series<u64> = f.faults.iter().map(|(k, (n, _))| (vec![("kind", k.clone())], *n)).collect();
    let active: Series<u64> = f.faults.iter().map(|(k, (_, a))| (vec![("kind", k.clone())], *a)).collect();
    family(e, "loadgen_faults_applied", "Faults of the schedule applied so far, by kind", true, &applied)?;
    family(e, "loadgen_fault_active", "Faults in effect now, by kind", false, &active)
}

fn encode_db(f: &Figures, e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    if let Some(db) = &f.db {
        family(
            e,
            "loadgen_db_commits_per_second",
            "Database commits per second",
            false,
            &[(vec![], db.commits_per_sec)],
        )?;
        family(
            e,
            "loadgen_db_rollbacks_per_second",
            "Database rollbacks per second",
            false,
            &[(vec![], db.rollbacks_per_sec)],
        )?;
        let waits = vec![
            (vec![("lock", "any".to_string())], db.lock_waits),
            (vec![("lock", "advisory".to_string())], db.advisory_lock_waits),
        ];
        family(e, "loadgen_db_lock_waits", "Backends waiting on a lock at the sample", false, &waits)?;
        let queues = vec![
            (vec![("queue", "orchestrator".to_string())], db.orchestrator_queue),
            (vec![("queue", "worker".to_string())], db.worker_queue),
            (vec![("queue", "timer".to_string())], db.timer_queue),
        ];
        family(e, "loadgen_db_queue_depth", "duroxide-pg's queue depths", false, &queues)?;
        family(e, "loadgen_db_deadlocks", "Deadlocks the database detected", true, &[(vec![], f.deadlocks)])?;
    }
    let retries: Series<u64> = f.provider_retries.iter().map(|(k, n)| (vec![("error", k.clone())], *n)).collect();
    family(e, "loadgen_provider_retries", "Provider errors the runtimes met and retried", true, &retries)
}

#[cfg(test)]
mod tests {
    use super::tests_support::render;
    use super::*;

    #[test]
    fn the_figures_encode_as_openmetrics_with_cumulative_buckets() {
        let mut h = LatencyHistogram::new();
        for us in [800, 40_000, 40_000, 3_000_000] {
            h.record_us(us);
        }
        let mut f = Figures::default();
        f.start("r1", "light", "mixed", "0.1.38", 2);
        f.scenarios
            .insert("fanout".into(), Counts { launched: 5, completed: 4, failed_poison: 1, ..Default::default() });
        f.latency = Buckets::of(&h);
        f.quantiles_us = [40_000, 3_000_000, 3_000_000];
        f.fault("pause-db", true);
        let text = render(f);
        for line in [
            "loadgen_run_info{run_id=\"r1\",profile=\"light\",scenario=\"mixed\",builds=\"0.1.38\"",
            "loadgen_orchestrations_completed_total{scenario=\"fanout\"} 4",
            "loadgen_orchestrations_failed_total{scenario=\"fanout\",category=\"poison\"} 1",
            "loadgen_orchestrations_failed_total{scenario=\"fanout\",category=\"infrastructure\"} 0",
            "loadgen_latency_seconds_count 4",
            "loadgen_latency_seconds_bucket{le=\"0.001\"} 1",
            "loadgen_latency_seconds_bucket{le=\"0.05\"} 3",
            "loadgen_latency_seconds_bucket{le=\"2.5\"} 3",
            "loadgen_latency_seconds_bucket{le=\"5.0\"} 4",
            "loadgen_latency_seconds_bucket{le=\"+Inf\"} 4",
            "loadgen_latency_quantile_seconds{quantile=\"0.99\"} 3.0",
            "loadgen_agents{state=\"up\"} 2",
            "loadgen_fault_active{kind=\"pause-db\"} 1",
            "loadgen_faults_applied_total{kind=\"pause-db\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        // No database sampled: no database figures rather than zeros.
        assert!(!text.contains("loadgen_db_commits"), "{text}");
    }

    #[test]
    fn the_same_database_sample_counts_its_deadlocks_once() {
        let mut f = Figures::default();
        let db = DbSample { t_s: 1.0, deadlocks: 2, ..Default::default() };
        let empty = LatencyHistogram::new();
        let frame = |db| Frame {
            elapsed_s: 1.0,
            rows: Vec::new(),
            total: Counts::default(),
            in_flight: 0,
            p99_us: 0,
            headline: &empty,
            observation: &empty,
            scenarios: BTreeMap::new(),
            provider_errors: BTreeMap::new(),
            merged_last: None,
            db,
            offered: None,
            offered_now: None,
        };
        f.frame(&frame(Some(&db)));
        f.frame(&frame(Some(&db)));
        let later = DbSample { t_s: 2.0, deadlocks: 1, ..Default::default() };
        f.frame(&frame(Some(&later)));
        assert_eq!(f.deadlocks, 3);
    }
}

#[cfg(test)]
mod documented {
    use super::tests_support::*;

    /// Every metric the endpoint serves is in docs/watching.md's table, and
    /// the table names none it does not serve.
    #[test]
    fn every_metric_is_documented_and_every_documented_one_served() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/watching.md")).expect("doc");
        let section = doc.split("## Each agent's endpoint").next().unwrap_or_default();
        let served = served_names(&render(everything()));
        for name in &served {
            assert!(section.contains(&format!("`{name}")), "{name} is served but not in docs/watching.md");
        }
        for row in section.lines().filter(|l| l.starts_with("| `loadgen_")) {
            for name in row.split('`').skip(1).step_by(2).filter(|n| n.starts_with("loadgen_")) {
                let base = name.split('{').next().unwrap_or(name);
                assert!(served.contains(base), "docs/watching.md names {base}, which is not served: {served:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use std::collections::BTreeSet;

    pub fn render(f: Figures) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Shared(std::sync::Mutex::new(f))));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
    }

    /// Figures with every optional part present.
    pub fn everything() -> Figures {
        let mut f = Figures::default();
        f.start("r", "p", "s", "b", 1);
        f.scenarios.insert("s".into(), Counts::default());
        f.offered = Some((1.0, true));
        f.db = Some(DbSample::default());
        f.passed = Some(true);
        f.provider_retries.insert("fetch/deadlock".into(), 1);
        f.fault("pause-db", true);
        f
    }

    /// The metric names of the sample lines (a histogram's series by its name).
    pub fn served_names(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let name = l.split(['{', ' ']).next().unwrap_or_default();
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|n| n.ends_with("_seconds")))
                    .unwrap_or(name)
                    .to_string()
            })
            .collect()
    }
}
