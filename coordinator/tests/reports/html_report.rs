//! The HTML report of a run and of a sweep: what the markup must hold (every
//! chart, escaped text, nothing fetched from outside). That a real browser
//! draws the charts is [`super::browser`].

use std::collections::BTreeMap;

use loadgen_common::histogram::LatencySummary;
use loadgen_coordinator::model::procedures::{FetchRow, FunctionRow, ProcedureReport};
use loadgen_coordinator::model::sweep::SweepMode;
use loadgen_coordinator::model::{
    AgentReport, Audit, Counts, DbLoad, DbSample, Environment, FaultEvent, FaultReport, Gate, LostAgent, RunReport,
    Section, SpectrumPoint, StageRow, StagesReport, SweepReport, SweepStep, TimePoint, Timeline,
};
use loadgen_coordinator::plan::ProfilePlan;
use loadgen_coordinator::plan::profile::{Arrival, find_profile};
use loadgen_coordinator::report::html::{render_run, render_sweep};

const HOSTILE: &str = "<script>alert(1)</script>";
const CHARTS: [&str; 7] =
    ["throughput", "latency", "spectrum", "db-commits", "db-connections", "db-locks", "db-queues"];

fn latency(p50_ms: f64, count: u64) -> LatencySummary {
    let us = |f: f64| (p50_ms * f * 1000.0) as u64;
    LatencySummary {
        count,
        min_us: us(0.3),
        mean_us: p50_ms * 1200.0,
        p50_us: us(1.0),
        p90_us: us(1.7),
        p99_us: us(2.6),
        p999_us: us(3.4),
        max_us: us(5.0),
    }
}

fn section(completed: u64, p50_ms: f64) -> Section {
    let counts = Counts {
        launched: completed + 3,
        completed,
        failed_application: 1,
        unfinished: 2,
        activities: completed * 4,
        late: 7,
        dropped: 1,
        ..Default::default()
    };
    Section {
        counts,
        elapsed_s: 30.0,
        orch_per_sec: completed as f64 / 30.0,
        activities_per_sec: completed as f64 * 4.0 / 30.0,
        e2e_latency: latency(p50_ms, completed),
        observed_latency: latency(p50_ms + 40.0, completed),
        start_latency: latency(2.0, completed + 3),
        intended_latency: Some(latency(p50_ms * 1.3, completed)),
        observation_delay: Some(latency(45.0, completed)),
        start_lateness: Some(latency(0.4, completed)),
    }
}

/// One agent's second `t`: throughput and latency wander, with a latency spike at 20 s.
fn point(t: usize, agent: usize) -> TimePoint {
    let x = t as f64;
    let orch = 25.0 + 6.0 * (x / 3.0 + agent as f64).sin();
    // Agent 1 completes nothing in second 12: its latency line has a gap there.
    let completed = if agent == 1 && t == 12 { 0 } else { orch.round() as u64 };
    let spike = if t == 20 { 250.0 } else { 0.0 };
    let p99 = if completed == 0 { 0.0 } else { (110.0 + 40.0 * (x / 6.0).sin() + spike) * (1.0 + 0.25 * agent as f64) };
    TimePoint {
        t_s: x + 1.0,
        launched: completed + 1,
        completed,
        failed: u64::from(t == 9),
        late: u64::from(t.is_multiple_of(7)),
        dropped: 0,
        in_flight: 40 + (t % 5) as u64,
        orch_per_sec: completed as f64,
        p50_ms: if completed == 0 { 0.0 } else { p99 / 3.0 },
        p99_ms: p99,
        max_ms: p99 * 1.6,
        offered: None,
        failures: Default::default(),
    }
}

fn merge(a: &TimePoint, b: &TimePoint) -> TimePoint {
    TimePoint {
        t_s: a.t_s,
        launched: a.launched + b.launched,
        completed: a.completed + b.completed,
        failed: a.failed + b.failed,
        late: a.late + b.late,
        dropped: a.dropped + b.dropped,
        in_flight: a.in_flight + b.in_flight,
        orch_per_sec: a.orch_per_sec + b.orch_per_sec,
        p50_ms: a.p50_ms.max(b.p50_ms) * 0.95,
        p99_ms: a.p99_ms.max(b.p99_ms) * 1.05,
        max_ms: a.max_ms.max(b.max_ms),
        // The run's 50/s plan, offered every second.
        offered: Some(50.0),
        failures: Default::default(),
    }
}

fn db_sample(t: usize) -> DbSample {
    let x = t as f64;
    let connections = BTreeMap::from([
        ("active".to_string(), 6 + (t % 4) as u64),
        ("idle".to_string(), 14 - (t % 4) as u64),
        ("idle in transaction".to_string(), u64::from(t.is_multiple_of(3))),
    ]);
    DbSample {
        t_s: x + 1.0,
        commits_per_sec: 310.0 + 60.0 * (x / 4.0).sin(),
        rollbacks_per_sec: if t.is_multiple_of(5) { 6.0 } else { 1.0 },
        deadlocks: u64::from(t == 17),
        connections,
        lock_waits: (t % 6) as u64,
        advisory_lock_waits: if t.is_multiple_of(4) { 2 } else { 0 },
        orchestrator_queue: (20.0 + 8.0 * (x / 5.0).sin()) as u64,
        worker_queue: (45.0 + 15.0 * (x / 7.0).cos()) as u64,
        timer_queue: 3,
        completed: t as u64 * 50,
        fetches: None,
    }
}

fn spectrum() -> Vec<SpectrumPoint> {
    let mut percentiles: Vec<f64> = (0..10).map(|i| i as f64 * 10.0).collect();
    percentiles.extend((91..100).map(f64::from));
    percentiles.extend((1..10).map(|i| 99.0 + i as f64 / 10.0));
    percentiles.extend([99.92, 99.95, 99.97, 99.99, 99.995, 99.999, 99.9995, 99.9999]);
    let tail = |p: f64| -(1.0 - p / 100.0).max(1e-7).log10();
    percentiles
        .into_iter()
        .map(|p| SpectrumPoint { percentile: p, latency_ms: 35.0 + 28.0 * tail(p).powi(2) })
        .collect()
}

fn agent(index: u32, hostname: &str) -> AgentReport {
    AgentReport {
        index,
        address: format!("127.0.0.1:{}", 7400 + index),
        hostname: hostname.into(),
        concurrency: 50,
        pool_max: 10,
        section: section(720 + index as u64 * 30, 40.0 + index as f64 * 5.0),
        lost: false,
        memory: Default::default(),
        cpu_s: 1.5,
        clock: Some(loadgen_coordinator::model::ClockReading { offset_ms: index as f64 * 0.5, within_ms: 0.2 }),
        clock_during: Some(loadgen_coordinator::model::ClockRange {
            min_offset_ms: -1.0,
            max_offset_ms: index as f64 * 0.5 + 1.0,
        }),
    }
}

/// A 30-second open-loop run of two agents with every series filled.
pub(crate) fn run_report(run_id: &str) -> RunReport {
    let mut profile = find_profile("light").expect("light profile");
    profile.rate = Some(50.0);
    profile.arrival = Arrival::Poisson;
    profile.p99_ms = Some(500.0);
    let agents: Vec<Vec<TimePoint>> = (0..2).map(|a| (0..30).map(|t| point(t, a)).collect()).collect();
    let merged = agents[0].iter().zip(&agents[1]).map(|(a, b)| merge(a, b)).collect();
    RunReport {
        tool_version: "0.1.0".into(),
        run_id: run_id.into(),
        schema: format!("loadgen_{run_id}"),
        started_at: "2026-11-26T10:00:00Z".into(),
        database: "postgres://loadgen:***@db.internal:5432/loadgen".into(),
        duroxide_version: "0.1.32".into(),
        duroxide_pg_version: "0.1.38".into(),
        profile: ProfilePlan::resolve(profile).expect("resolves"),
        agents: vec![agent(0, "worker-a"), agent(1, HOSTILE)],
        merged: section(1470, 42.0),
        audit: Audit {
            instances: 1476,
            launched: 1476,
            terminal_once: 1471,
            completed: 1470,
            failed: 1,
            notes: vec!["2 redeliveries".into()],
            ..Default::default()
        },
        db_load: DbLoad {
            commits: 9300,
            rollbacks: 60,
            commits_per_orchestration: 6.3,
            generator_calls: 2100,
            completion_queries: 600,
            completion_share_pct: 6.5,
            generator_share_pct: 22.6,
            completion_source: "cluster".into(),
            completion_queries_per_orchestration: 0.4,
            sampling_queries: 90,
            overhead_calls: 690,
            overhead_share_pct: 7.4,
            stats_resets: 0,
        },
        gates: vec![
            Gate {
                name: "throughput".into(),
                limit: ">= 1.00 orch/s".into(),
                value: "49.00 orch/s".into(),
                passed: true,
            },
            Gate { name: "p99".into(), limit: "<= 500ms".into(), value: "150.2ms".into(), passed: true },
        ],
        passed: true,
        warnings: vec!["memory growth: agent 1 grew 9.00 MB/min".into()],
        environment: Environment {
            db_host: "db.internal".into(),
            machine: "bench-1".into(),
            cpus: 2,
            postgres_version: "16.4".into(),
            commit: Some("abc1234".into()),
            ..Default::default()
        },
        provider_errors: BTreeMap::from([("fetch_work_item/timeout".to_string(), 3)]),
        timeline: Timeline { merged, agents },
        db_timeline: (0..30).map(db_sample).collect(),
        spectrum: spectrum(),
        faults: vec![FaultReport {
            event: FaultEvent {
                kind: "pause-db".into(),
                target: "the throwaway Postgres".into(),
                at_s: 12.0,
                end_s: 14.0,
                detail: "34 server processes stopped for 2s".into(),
                ..Default::default()
            },
            before_orch_per_sec: 50.0,
            before_p99_ms: 300.0,
            recovery_s: Some(2.0),
            recovery_orch_per_sec: 45.0,
            recovery_p99_ms: Some(600.0),
            ..Default::default()
        }],
        procedures: Some(ProcedureReport {
            functions_tracked: true,
            statements_tracked: true,
            functions: vec![FunctionRow {
                name: "fetch_orchestration_item".into(),
                calls: 1500,
                total_ms: 3900.0,
                self_ms: 3900.0,
                mean_ms: 2.6,
                share_pct: 44.2,
            }],
            fetches: vec![FetchRow {
                procedure: "fetch_orchestration_item".into(),
                calls: 1500,
                empty: 300,
                empty_pct: 20.0,
                calls_while_ready: 1000,
                empty_while_ready: 200,
                empty_while_ready_pct: 20.0,
                seconds_with_ready_work: 7,
            }],
            ..Default::default()
        }),
        stages: Some(StagesReport {
            plan: "50/s,30s:50/s".into(),
            open: true,
            rows: vec![StageRow {
                from_s: 0.0,
                to_s: 30.0,
                start_value: 50.0,
                end_value: 50.0,
                offered: 50.0,
                launched_per_sec: 50.2,
                completed_per_sec: 49.8,
                mean_in_flight: 85.0,
                worst_p99_ms: 410.0,
            }],
        }),
        postgres_settings: BTreeMap::from([
            ("max_connections".to_string(), "100".to_string()),
            ("shared_buffers".to_string(), "128MB".to_string()),
        ]),
        ..Default::default()
    }
}

/// Five open-loop steps; the knee at the third, the SLO broken after it.
pub(crate) fn sweep_report() -> SweepReport {
    let figures =
        [(20.0, 20.0, 80.0), (40.0, 39.8, 95.0), (60.0, 59.1, 140.0), (80.0, 66.0, 620.0), (100.0, 64.0, 1500.0)];
    let steps = figures
        .iter()
        .enumerate()
        .map(|(i, &(offered, achieved, p99))| SweepStep {
            offered,
            achieved_orch_per_sec: achieved,
            p50_ms: p99 / 3.0,
            p99_ms: p99,
            max_ms: p99 * 1.5,
            mean_latency_ms: p99 / 2.5,
            mean_in_flight: achieved * p99 / 2500.0,
            littles_law_in_flight: achieved * p99 / 2500.0 * 1.02,
            late: if i > 2 { 40 * i as u64 } else { 0 },
            dropped: if i == 4 { 12 } else { 0 },
            failed: 0,
            deadlocks: u64::from(i == 4),
            rollbacks: 10 * i as u64,
            commits_per_sec: achieved * 6.3,
            peak_lock_waits: i as u64 * 2,
            within_slo: p99 <= 500.0,
            audit_passed: true,
            degraded: false,
            run_id: format!("step{i}"),
        })
        .collect();
    let mut profile = find_profile("light").expect("light profile");
    profile.rate = Some(20.0);
    SweepReport {
        mode: SweepMode::Rate,
        slo_p99_ms: 500.0,
        steps,
        knee: Some(2),
        max_sustainable_orch_per_sec: Some(59.1),
        stop_reason: "p99 1500.0 ms above the SLO for two steps".into(),
        recommendation: vec![
            "Run at most 59 orch/s per 2 agents (p99 140 ms).".into(),
            "Beyond 60 orch/s the database queues grow: add dispatchers before agents.".into(),
        ],
        profile: ProfilePlan::resolve(profile).expect("resolves"),
        environment: Environment {
            db_host: "db.internal".into(),
            machine: "bench-1".into(),
            cpus: 2,
            ..Default::default()
        },
        agents: 2,
        passed: true,
        problems: Vec::new(),
    }
}

pub(crate) fn html_of_run(r: &RunReport) -> String {
    let mut out = Vec::new();
    render_run(r, &mut out).expect("render run");
    String::from_utf8(out).expect("utf-8")
}

pub(crate) fn html_of_sweep(s: &SweepReport, runs: &[RunReport]) -> String {
    let mut out = Vec::new();
    render_sweep(s, runs, &mut out).expect("render sweep");
    String::from_utf8(out).expect("utf-8")
}

/// Nothing the page would fetch or run when viewed.
fn assert_self_contained(html: &str) {
    for needle in ["http://", "https://", "<script", "src=", "url(", "@import", "<link", "<iframe"] {
        assert!(!html.to_ascii_lowercase().contains(needle), "page contains {needle:?}");
    }
    for (i, _) in html.match_indices("href=") {
        assert!(html[i..].starts_with("href=\"#"), "only in-page links: {}", &html[i..i + 40]);
    }
}

#[test]
fn run_report_has_every_chart_and_section() {
    let html = html_of_run(&run_report("ab12cd34"));
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for name in CHARTS {
        assert!(html.contains(&format!(r#"<svg class="chart" data-chart="{name}""#)), "no {name} chart");
    }
    assert!(!html.contains("no data"), "every chart has data");
    for text in [
        "Run ab12cd34",
        "PASSED",
        "2026-11-26T10:00:00Z",
        "50 orch/s (open loop)",
        "poisson",
        "3000 (default)",
        "max_connections",
        "128MB",
        "16.4",
        "duroxide-pg",
        "0.1.38",
        "worker-a",
        "from intended start (open loop",
        "start lateness (call began minus intended start)",
        "from start call (end-to-end",
        "memory growth: agent 1",
        "fetch_work_item/timeout",
        "commits per orchestration",
        "deadlock ×1",
        "99.999%",
        "Load stages (starts per second): 50/s,30s:50/s",
        "Faults (recovery",
        "34 server processes stopped for 2s",
        "Stored procedures (pg_stat_user_functions)",
        "200 (20.0%)",
    ] {
        assert!(html.contains(text), "page lacks {text:?}");
    }
    for colour in ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"] {
        assert!(html.contains(&format!(r#"stroke="{colour}""#)), "no line of colour {colour}");
    }
    // The fault shows as a band on every chart over time (not the spectrum).
    assert_eq!(html.matches(r#"data-band="pause-db""#).count(), CHARTS.len() - 1);
    assert!(html.contains(r##"stroke="#111111""##), "the offered load line");
}

/// It reads like a dashboard: verdict and headline figures, then the
/// charts, then the tables, configuration and environment last; one 30 s
/// second does not flatten the latency chart, and says so.
#[test]
fn run_report_leads_with_the_verdict_and_charts_and_clips_an_outlier() {
    let mut r = run_report("ab12cd34");
    r.timeline.merged[12].max_ms = 30_000.0;
    r.aborted = Some(loadgen_coordinator::model::Aborted {
        gate: "p99 latency".into(),
        at_s: 14.2,
        detail: "p99 over the last 10 s was 900ms".into(),
    });
    let html = html_of_run(&r);
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("page lacks {needle:?}"));
    let tiles = at("data-headline");
    let verdict = at("data-verdict");
    let first_chart = at(r#"<svg class="chart""#);
    let first_table = at(r#"<table class="data">"#);
    let configuration = at("Configuration and environment");
    assert!(tiles < verdict && verdict < first_chart, "verdict and headline figures first");
    assert!(first_chart < first_table, "a table comes before the first chart");
    assert!(first_table < configuration && html[configuration..].contains("Postgres settings"), "configuration last");
    assert!(html.contains("ABORTED") && html.contains("the p99 latency gate was lost at 14.2s"), "the abort");
    let latency = &html[at(r#"data-chart="latency""#)..];
    let latency = &latency[..latency.find("</svg>").expect("end")];
    assert!(latency.contains("30000.0ms at") && latency.contains("off the axis"), "the outlier is named");
    assert!(latency.contains("clipped at"), "the axis says it is clipped");
}

#[test]
fn run_report_refers_to_nothing_outside_itself() {
    assert_self_contained(&html_of_run(&run_report("ab12cd34")));
    let s = sweep_report();
    assert_self_contained(&html_of_sweep(&s, &[run_report("step0"), run_report("step1")]));
}

#[test]
fn report_text_is_escaped() {
    let mut r = run_report("ab12cd34");
    r.lost_agents.push(LostAgent {
        index: 1,
        address: "127.0.0.1:7401".into(),
        at_s: 12.5,
        reason: "stream closed: <b>\"bye\"</b> & 'gone'".into(),
        ..Default::default()
    });
    r.postgres_settings.insert("<img src=x>".into(), "a\"b".into());
    let html = html_of_run(&r);
    assert!(!html.contains(HOSTILE), "raw script tag in the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "hostname not shown escaped");
    assert!(html.contains("stream closed: &lt;b&gt;&quot;bye&quot;&lt;/b&gt; &amp; &#39;gone&#39;"));
    assert!(html.contains("&lt;img src=x&gt;") && !html.contains("<img"));
    assert!(html.contains("DEGRADED"));
}

#[test]
fn empty_run_report_says_no_data() {
    let html = html_of_run(&RunReport::default());
    assert!(!html.contains(r#"<svg class="chart""#), "no chart without data");
    assert_eq!(html.matches(">no data<").count(), CHARTS.len(), "{html}");
    let html = html_of_sweep(&SweepReport::default(), &[]);
    assert_eq!(html.matches(">no data<").count(), 2, "{html}");
}

#[test]
fn sweep_report_has_steps_curve_knee_and_slo() {
    let s = sweep_report();
    let html = html_of_sweep(&s, &[run_report("step0"), run_report("step1")]);
    for name in ["sweep-curve", "sweep-offered", "step-throughput"] {
        assert!(html.contains(&format!(r#"<svg class="chart" data-chart="{name}""#)), "no {name} chart");
    }
    assert_eq!(html.matches(r#"data-chart="step-throughput""#).count(), 2);
    for text in [
        "SLO p99 ≤ 500 ms",
        ">knee<",
        "3 (knee)",
        "Little&#39;s law",
        "p99 1500.0 ms above the SLO for two steps",
        "Run at most 59 orch/s per 2 agents",
        "59.10 orch/s",
        "Step 2 · run step1",
        "stroke-dasharray",
    ] {
        assert!(html.contains(text), "page lacks {text:?}");
    }
    assert!(html.contains(r##"stroke="#17becf""##) && html.contains(r##"fill="#e377c2""##));
    // Three steps within the SLO, two beyond it (one row is the knee's).
    assert_eq!(html.matches("<td>yes</td>").count(), 3);
    assert_eq!(html.matches("<td>no</td>").count(), 2);
}
