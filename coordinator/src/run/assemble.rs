//! The report of one run from what was measured: per agent, per scenario
//! and merged sections (histograms merged exactly), the database's load and
//! contention, the audit, and the gates.

use std::collections::BTreeMap;

use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::tally::{Counts, Histograms, Tally};

use super::live::Live;
use super::stream::Followed;
use crate::agents::AgentLink;
use crate::db::XactCounters;
use crate::db::audit::AuditOutcome;
use crate::error::CoordinatorError;
use crate::model::run::headline_histogram;
use crate::model::{
    AgentReport, Contention, DbLoad, DbSample, HistoryLatency, LostAgent, MemorySummary, ScenarioReport, Section,
    SpectrumPoint, StageRow, StagesReport, TimePoint,
};
use crate::plan::{AgentSlice, CompletionSource};
use loadgen_common::load::Load;
use std::time::Duration;

/// The merged figures of a run.
#[derive(Debug, Default)]
pub struct Merged {
    pub agents: Vec<AgentReport>,
    pub scenarios: Vec<ScenarioReport>,
    pub merged: Section,
    pub spectrum: Vec<SpectrumPoint>,
    pub provider_errors: BTreeMap<String, u64>,
    /// Scenario facts per agent, for the audit.
    pub facts: BTreeMap<u32, BTreeMap<String, u64>>,
}

/// Merge every agent's stream (and, for a lost agent, what the database
/// shows of its instances) into per-agent, per-scenario and merged sections.
pub fn merge(
    links: &[AgentLink],
    slices: &[AgentSlice],
    live: &Live,
    followed: &[Followed],
    lost: &[LostAgent],
    late_activities: &[u64],
) -> Result<Merged, CoordinatorError> {
    let mut out = Merged::default();
    let mut by_scenario: BTreeMap<String, Tally> = BTreeMap::new();
    let mut all = Histograms::default();
    let mut total = Counts::default();
    let mut elapsed_max: f64 = 0.0;
    for (i, link) in links.iter().enumerate() {
        let stream = live.agents.get(i).ok_or_else(|| CoordinatorError::agent(&link.address, "no stream"))?;
        let merge_err = |e| CoordinatorError::agent(&link.address, e);
        // One scenario (the usual case): its histograms are the agent's, no copy.
        let mut merged_here = Histograms::default();
        let hist = match stream.scenarios.values().next() {
            Some(t) if stream.scenarios.len() == 1 => &t.hist,
            _ => {
                for t in stream.scenarios.values() {
                    merged_here.merge(&t.hist).map_err(merge_err)?;
                }
                &merged_here
            }
        };
        let mut facts = BTreeMap::new();
        for (name, t) in &stream.scenarios {
            by_scenario.entry(name.clone()).or_default().add(t).map_err(merge_err)?;
            for (k, v) in &t.facts {
                *facts.entry(k.clone()).or_default() += v;
            }
        }
        out.facts.insert(i as u32, facts);
        let mut counts = stream.counts();
        counts.activities += late_activities.get(i).copied().unwrap_or(0);
        let (elapsed_s, is_lost) = match followed.get(i) {
            Some(Followed::Finished(f)) => {
                for (k, n) in &f.provider_errors {
                    *out.provider_errors.entry(k.clone()).or_default() += n;
                }
                (f.elapsed_ms as f64 / 1000.0, false)
            }
            Some(Followed::Lost { at, .. }) => {
                // Outcomes from the database (it cannot report them any more):
                // everything it started, and how it ended after the others
                // finished it. Latencies and activities are what it reported.
                if let Some(l) = lost.iter().find(|l| l.index == link.index) {
                    counts.launched = counts.launched.max(l.instances_in_db);
                    counts.completed = l.completed_in_db;
                    counts.unfinished = counts.launched.saturating_sub(counts.completed + counts.failed());
                }
                (at.as_secs_f64(), true)
            }
            None => (0.0, false),
        };
        elapsed_max = elapsed_max.max(elapsed_s);
        total.add(&counts);
        out.agents.push(AgentReport {
            index: link.index,
            address: link.address.clone(),
            hostname: link.hello.hostname.clone(),
            concurrency: slices.get(i).map_or(0, |s| s.in_flight()),
            pool_max: link.hello.pool_max,
            section: Section::new(counts, elapsed_s, hist),
            lost: is_lost,
            memory: MemorySummary::from_samples(stream.memory.clone()),
            cpu_s: stream.cpu_ms as f64 / 1000.0,
            clock: link.clock.map(|(offset_ms, within_ms)| crate::model::ClockReading { offset_ms, within_ms }),
            clock_during: stream
                .clock
                .map(|(min_offset_ms, max_offset_ms)| crate::model::ClockRange { min_offset_ms, max_offset_ms }),
        });
    }
    // The merged histograms are the scenarios' (a few merges, not one per
    // agent: at a thousand agents the per-agent merges are the cost).
    for t in by_scenario.values() {
        all.merge(&t.hist).map_err(|e| CoordinatorError::Local(format!("merge: {e}")))?;
    }
    out.merged = Section::new(total, elapsed_max, &all);
    out.spectrum = spectrum(headline_histogram(&all));
    out.scenarios = by_scenario
        .into_iter()
        .map(|(name, t)| ScenarioReport {
            name,
            section: Section::new(t.counts, elapsed_max, &t.hist),
            facts: t.facts,
            ..Default::default()
        })
        .collect();
    Ok(out)
}

/// Add the audit's per-scenario findings and history latencies.
pub fn add_audit(scenarios: &mut Vec<ScenarioReport>, outcome: &AuditOutcome) {
    for (name, sa) in &outcome.audit.by_scenario {
        if !scenarios.iter().any(|s| &s.name == name) {
            scenarios.push(ScenarioReport { name: name.clone(), ..Default::default() });
        }
        if let Some(s) = scenarios.iter_mut().find(|s| &s.name == name) {
            s.audit = sa.clone();
        }
    }
    for (name, metrics) in &outcome.latencies {
        if let Some(s) = scenarios.iter_mut().find(|s| &s.name == name) {
            s.history_latencies = metrics
                .iter()
                .map(|(metric, v)| HistoryLatency { name: metric.clone(), latency: v.histogram.summary() })
                .collect();
            for (metric, v) in metrics.iter().filter(|(_, v)| v.clamped > 0) {
                s.facts.insert(format!("{metric} clamped at 0 (clock skew)"), v.clamped);
            }
        }
    }
}

/// What the generator itself asked of the database beyond its start calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overhead {
    pub tracking: CompletionSource,
    /// The coordinator's completion queries (cluster tracking; the agents'
    /// are in the merged counts).
    pub coordinator_queries: u64,
    /// The database sampler's queries.
    pub sampling_queries: u64,
}

/// The database's load during the run and the generator's share of it.
pub fn db_load(counters: &XactCounters, merged: &Section, o: Overhead) -> DbLoad {
    let c = &merged.counts;
    let commits = counters.commits;
    let completion_queries = c.status_queries + o.coordinator_queries;
    let overhead_calls = completion_queries + o.sampling_queries;
    let generator_calls = c.launched + c.start_errors + overhead_calls;
    let pct = |n: u64| if commits > 0 { n as f64 * 100.0 / commits as f64 } else { 0.0 };
    let per_orch = |n: u64| if c.completed > 0 { n as f64 / c.completed as f64 } else { 0.0 };
    DbLoad {
        commits,
        rollbacks: counters.rollbacks,
        commits_per_orchestration: per_orch(commits),
        generator_calls,
        completion_queries,
        completion_share_pct: pct(completion_queries),
        generator_share_pct: pct(generator_calls),
        completion_source: o.tracking.as_str().to_string(),
        completion_queries_per_orchestration: per_orch(completion_queries),
        sampling_queries: o.sampling_queries,
        overhead_calls,
        overhead_share_pct: pct(overhead_calls),
        stats_resets: 0,
    }
}

/// What contention the run met.
pub fn contention(counters: &XactCounters, samples: &[DbSample], retries: &BTreeMap<String, u64>) -> Contention {
    let during: Vec<&DbSample> = samples.iter().filter(|s| s.t_s >= 0.0).collect();
    let n = during.len().max(1) as f64;
    Contention {
        deadlocks: counters.deadlocks,
        peak_lock_waits: during.iter().map(|s| s.lock_waits).max().unwrap_or(0),
        mean_lock_waits: during.iter().map(|s| s.lock_waits as f64).sum::<f64>() / n,
        peak_advisory_lock_waits: during.iter().map(|s| s.advisory_lock_waits).max().unwrap_or(0),
        mean_advisory_lock_waits: during.iter().map(|s| s.advisory_lock_waits as f64).sum::<f64>() / n,
        provider_retries: retries.clone(),
        samples: during.len() as u64,
    }
}

/// The headline latency at percentiles from 0 to 99.9999 (and the maximum),
/// for the percentile-spectrum chart.
pub fn spectrum(h: &LatencyHistogram) -> Vec<SpectrumPoint> {
    if h.count() == 0 {
        return Vec::new();
    }
    let mut ps: Vec<f64> = (0..10).map(|i| f64::from(i) * 10.0).collect();
    ps.extend([95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9999]);
    let mut out: Vec<SpectrumPoint> = ps
        .into_iter()
        .map(|p| SpectrumPoint { percentile: p, latency_ms: h.quantile_us(p / 100.0) as f64 / 1000.0 })
        .collect();
    out.push(SpectrumPoint { percentile: 100.0, latency_ms: h.max_us() as f64 / 1000.0 });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contention_comes_from_the_run_not_the_warm_up() {
        let s = |t_s: f64, locks: u64, advisory: u64| DbSample {
            t_s,
            lock_waits: locks,
            advisory_lock_waits: advisory,
            ..Default::default()
        };
        let c = contention(
            &XactCounters { deadlocks: 3, ..Default::default() },
            &[s(-0.5, 99, 99), s(1.0, 2, 1), s(2.0, 4, 3)],
            &BTreeMap::from([("fetch_orchestration_item/retried: deadlock".to_string(), 2)]),
        );
        assert_eq!((c.deadlocks, c.peak_lock_waits, c.peak_advisory_lock_waits, c.samples), (3, 4, 3, 2));
        assert!((c.mean_lock_waits - 3.0).abs() < 1e-9 && (c.mean_advisory_lock_waits - 2.0).abs() < 1e-9);
        let sp = spectrum(&{
            let mut h = LatencyHistogram::new();
            h.record_us(1000);
            h
        });
        assert_eq!(sp.last().map(|p| p.percentile), Some(100.0));
    }
}

/// Rows a stage table shows at most; a longer plan (a sine) is summarised
/// in this many equal windows.
const STAGE_ROWS: usize = 12;

/// Put the plan's offered load on the merged per-second series, and when the
/// load was staged, hold each stage's offered load against what was achieved.
pub fn stages(load: &Load, merged: &mut [TimePoint]) -> Option<StagesReport> {
    let plan = &load.plan;
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let mut prev = 0.0;
    for p in merged.iter_mut() {
        let len = (p.t_s - prev).max(1e-3);
        p.offered = Some(if load.is_open() {
            (plan.integral(secs(p.t_s)) - plan.integral(secs(prev))) / len
        } else {
            plan.value_at(secs(p.t_s)).round()
        });
        prev = p.t_s;
    }
    if !load.staged {
        return None;
    }
    let points = plan.points();
    let mut windows: Vec<(f64, f64)> =
        points.windows(2).map(|w| (w[0].0.as_secs_f64(), w[1].0.as_secs_f64())).filter(|(a, b)| b > a).collect();
    if windows.len() > STAGE_ROWS {
        let end = plan.duration().as_secs_f64();
        let step = end / STAGE_ROWS as f64;
        windows = (0..STAGE_ROWS).map(|k| (k as f64 * step, (k + 1) as f64 * step)).collect();
    }
    let rows = windows
        .into_iter()
        .map(|(from, to)| {
            // The seconds whose middle falls in the stage (a second's end
            // drifts a few milliseconds past the whole second).
            let began = |i: usize| if i == 0 { 0.0 } else { merged[i - 1].t_s };
            let first = merged.iter().enumerate().position(|(i, p)| (began(i) + p.t_s) / 2.0 >= from);
            let inside: Vec<&TimePoint> = merged
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    let mid = (began(*i) + p.t_s) / 2.0;
                    mid >= from && mid < to
                })
                .map(|(_, p)| p)
                .collect();
            let n = inside.len().max(1) as f64;
            // The mean rate, or the mean in-flight target, over the same
            // seconds as the achieved figures (a stage ending at 4.8 s is
            // measured over seconds 0-5, which hold 0.2 s of the next one):
            // like against like. Over the stage itself when no second is.
            // Open loop: the starts offered in those seconds per second
            // counted, as the starts achieved are.
            let offered = match (first, inside.last()) {
                (Some(i), Some(last)) => {
                    let a = began(i);
                    let sum = plan.integral(secs(last.t_s)) - plan.integral(secs(a));
                    if load.is_open() { sum / n } else { sum / (last.t_s - a).max(1e-3) }
                }
                _ => (plan.integral(secs(to)) - plan.integral(secs(from))) / (to - from).max(1e-3),
            };
            StageRow {
                from_s: from,
                to_s: to,
                start_value: plan.value_at(secs(from)),
                end_value: plan.value_at(secs(to - 1e-6)),
                offered,
                launched_per_sec: inside.iter().map(|p| p.launched).sum::<u64>() as f64 / n,
                completed_per_sec: inside.iter().map(|p| p.completed).sum::<u64>() as f64 / n,
                mean_in_flight: inside.iter().map(|p| p.in_flight).sum::<u64>() as f64 / n,
                worst_p99_ms: inside.iter().map(|p| p.p99_ms).fold(0.0, f64::max),
            }
        })
        .collect();
    Some(StagesReport { plan: plan.describe(load.is_open()), open: load.is_open(), rows })
}

#[cfg(test)]
mod stage_tests {
    use super::*;
    use loadgen_common::load::Arrival;

    fn second(t: f64, launched: u64) -> TimePoint {
        TimePoint { t_s: t, launched, completed: launched, in_flight: 2, p99_ms: 50.0, ..Default::default() }
    }

    #[test]
    fn each_stage_holds_offered_against_achieved() {
        let plan = loadgen_common::stages::StagePlan::parse("10/s,2s:10/s,0s:30/s,2s:30/s", true, Duration::ZERO)
            .expect("plan");
        let load = Load { plan, staged: true, ..Load::open(30.0, Arrival::Constant, 100, Duration::ZERO) };
        // Seconds end a little after the whole second, as they do in a run.
        let mut merged = vec![second(1.002, 10), second(2.003, 9), second(3.001, 31), second(4.004, 29)];
        let report = stages(&load, &mut merged).expect("staged");
        let offered: Vec<f64> = merged.iter().map(|p| p.offered.unwrap_or(-1.0)).collect();
        assert!((offered[0] - 10.0).abs() < 1e-9 && (offered[2] - 30.0).abs() < 1e-9, "{offered:?}");
        assert_eq!(report.rows.len(), 2, "the jump is no stage of its own");
        let (a, b) = (&report.rows[0], &report.rows[1]);
        assert!((a.offered - 10.0).abs() < 0.1 && a.launched_per_sec == 9.5, "{a:?}");
        assert_eq!((b.from_s, b.to_s, b.launched_per_sec), (2.0, 4.0, 30.0));
        assert!((b.offered - 30.0).abs() < 0.1, "{b:?}");
        // Constant load: the offered series, no stage table.
        let constant = Load::closed(5, Duration::from_secs(4));
        assert!(stages(&constant, &mut merged).is_none());
        assert_eq!(merged[0].offered, Some(5.0));
    }

    #[test]
    fn a_stage_off_the_whole_second_is_offered_over_the_seconds_it_is_measured_in() {
        // The jump at 2.5 s: the seconds 2-4 hold half a second of 10/s.
        let plan = loadgen_common::stages::StagePlan::parse("10/s,2.5s:10/s,0s:30/s,1.5s:30/s", true, Duration::ZERO)
            .expect("plan");
        let load = Load { plan, staged: true, ..Load::open(30.0, Arrival::Constant, 100, Duration::ZERO) };
        let mut merged = vec![second(1.0, 10), second(2.0, 10), second(3.0, 20), second(4.0, 30)];
        let report = stages(&load, &mut merged).expect("staged");
        let (a, b) = (&report.rows[0], &report.rows[1]);
        assert_eq!((a.to_s, b.from_s), (2.5, 2.5));
        assert!((a.offered - 10.0).abs() < 1e-9 && a.launched_per_sec == 10.0, "{a:?}");
        assert!((b.offered - 25.0).abs() < 1e-9 && b.launched_per_sec == 25.0, "{b:?}");
        assert_eq!(crate::report::view::stage_span(b.from_s, b.to_s), "2.5-4s");
    }
}

/// The duroxide-pg builds the agents said they run, distinct, in order.
pub fn builds(links: &[crate::agents::AgentLink]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for l in links {
        let v = l.hello.duroxide_pg_version.as_str();
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen.join(",")
}

/// What to say of the schema the agents migrated: at the start, or, when an
/// upgrade migrated it again and this build now verifies it, that instead.
pub fn schema_notes(start: Vec<String>, after: Option<crate::db::SchemaCheck>) -> Vec<String> {
    const UNVERIFIED: &str = "does not verify";
    match after {
        Some(after)
            if start.iter().any(|n| n.contains(UNVERIFIED)) && !after.notes.iter().any(|n| n.contains(UNVERIFIED)) =>
        {
            let mut notes: Vec<String> = start.into_iter().filter(|n| !n.contains(UNVERIFIED)).collect();
            notes.push(format!(
                "the agents' first build migrated the schema to a version this coordinator's duroxide-pg {} does not verify; after the upgrade during the run, it verifies",
                loadgen_common::DUROXIDE_PG_VERSION
            ));
            notes
        }
        _ => start,
    }
}

#[cfg(test)]
mod schema_note_tests {
    use super::*;
    use crate::db::SchemaCheck;

    #[test]
    fn a_schema_note_the_upgrade_made_stale_is_replaced() {
        let start =
            vec!["the agents' build migrated the schema to a version ... does not verify (older ...)".to_string()];
        let verified = SchemaCheck { notes: Vec::new(), readable: true };
        let notes = schema_notes(start.clone(), Some(verified));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("after the upgrade during the run, it verifies"), "{notes:?}");
        let still = SchemaCheck { notes: start.clone(), readable: true };
        assert_eq!(schema_notes(start.clone(), Some(still)), start);
        assert_eq!(schema_notes(start.clone(), None), start);
    }
}
