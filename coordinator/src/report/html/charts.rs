//! The charts of the HTML pages, built from a report.

use std::collections::BTreeSet;

use crate::model::{DbSample, RunReport, SweepReport, TimePoint};

use super::svg::{Chart, Mark, Rule, Series};
use crate::report::view::fmt_ms;

use super::*;

pub(super) fn agent_label(r: &RunReport, i: usize) -> String {
    match r.agents.get(i) {
        Some(a) if !a.hostname.is_empty() => format!("agent {} ({})", a.index, a.hostname),
        Some(a) => format!("agent {} ({})", a.index, a.address),
        None => format!("agent {i}"),
    }
}

/// The time range every chart over time of one run covers: from the start
/// (or the first database sample before it) to the last point of either.
pub(super) fn time_span(r: &RunReport) -> (f64, f64) {
    let ts = r.timeline.merged.iter().map(|p| p.t_s).chain(r.db_timeline.iter().map(|s| s.t_s));
    ts.fold((0.0f64, 0.0f64), |(lo, hi), t| (lo.min(t), hi.max(t)))
}

/// The chart, its time axis covering `span`.
pub(super) fn spanning(mut c: Chart, span: (f64, f64)) -> Chart {
    c.x_span = Some(span);
    c
}

pub(super) fn time_series(points: &[TimePoint], f: impl Fn(&TimePoint) -> f64) -> Vec<(f64, f64)> {
    points.iter().map(|p| (p.t_s, f(p))).collect()
}

/// A latency of 0 means nothing completed in that second: a gap, not a dip.
pub(super) fn latency_series(points: &[TimePoint], f: impl Fn(&TimePoint) -> f64) -> Vec<(f64, f64)> {
    time_series(points, |p| if p.completed == 0 && f(p) == 0.0 { f64::NAN } else { f(p) })
}

/// Agents drawn as their own lines on the charts over time; with more, only
/// the slowest are (the table below the charts has every agent).
pub(super) const CHART_AGENTS: usize = 8;

/// The agents whose lines a chart draws: every one when they fit, else the
/// [`CHART_AGENTS`] with the highest headline p99.
pub(super) fn charted_agents(r: &RunReport) -> Vec<(usize, &[TimePoint])> {
    let mut all: Vec<(usize, &[TimePoint])> =
        r.timeline.agents.iter().enumerate().map(|(i, p)| (i, p.as_slice())).collect();
    if all.len() > CHART_AGENTS {
        let p99 = |i: usize| r.agents.get(i).map_or(0, |a| a.section.headline_latency().p99_us);
        all.sort_by_key(|(i, _)| std::cmp::Reverse(p99(*i)));
        all.truncate(CHART_AGENTS);
        all.sort_by_key(|(i, _)| *i);
    }
    all
}

pub(super) fn throughput_chart(r: &RunReport, name: &str) -> Chart {
    let mut c = Chart::new(name, "Throughput over time", "time since start (s)", "completions per second");
    let merged = &r.timeline.merged;
    if r.open_loop() && merged.iter().any(|p| p.offered.is_some()) {
        let offered = time_series(merged, |p| p.offered.unwrap_or(f64::NAN));
        c.series.push(Series::line("offered starts/s (plan)", COLOR_OFFERED, offered).dashed());
        c.series.push(Series::line("started/s", COLOR_P50, time_series(merged, |p| p.launched as f64)));
    }
    c.series.push(Series::line("merged orch/s", COLOR_MERGED, time_series(merged, |p| p.orch_per_sec)));
    for (i, points) in charted_agents(r) {
        let s = Series::line(agent_label(r, i), PALETTE[i % PALETTE.len()], time_series(points, |p| p.orch_per_sec));
        c.series.push(s.dashed());
    }
    c
}

pub(super) fn latency_chart(r: &RunReport) -> Chart {
    let mut c = Chart::new("latency", "Latency over time", "time since start (s)", "latency (ms)");
    let m = &r.timeline.merged;
    // Max first, so p99 (often equal to it in a second with few samples) is drawn on top.
    c.series.push(Series::line("merged max", COLOR_MAX, latency_series(m, |p| p.max_ms)));
    c.series.push(Series::line("merged p99", COLOR_MERGED, latency_series(m, |p| p.p99_ms)));
    c.series.push(Series::line("merged p50", COLOR_P50, latency_series(m, |p| p.p50_ms)));
    for (i, points) in charted_agents(r) {
        let label = format!("{} p99", agent_label(r, i));
        c.series.push(Series::line(label, PALETTE[i % PALETTE.len()], latency_series(points, |p| p.p99_ms)).dashed());
    }
    clip_outliers(&mut c);
    c
}

/// One 30 s sample must not flatten every other line: when the largest
/// value is more than [`CLIP_FACTOR`] times the 95th percentile of what is
/// drawn, the axis stops there, the points above sit on its top edge, and
/// a mark names the largest (its value and second).
fn clip_outliers(c: &mut Chart) {
    let mut ys: Vec<f64> =
        c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|y| y.is_finite()).collect();
    if ys.len() < 10 {
        return;
    }
    ys.sort_by(f64::total_cmp);
    let q95 = ys[(ys.len() - 1) * 95 / 100];
    let ceiling = (q95 * CLIP_FACTOR).max(1.0);
    let Some(&max) = ys.last().filter(|&&m| m > ceiling) else { return };
    let above = ys.iter().filter(|&&y| y > ceiling).count();
    let mut at = (f64::NAN, String::new());
    for s in &mut c.series {
        for p in &mut s.points {
            if p.1 == max && at.0.is_nan() {
                at = (p.0, s.label.clone());
            }
            if p.1 > ceiling {
                p.1 = ceiling;
            }
        }
    }
    let more = if above > 1 { format!(", {} more above", above - 1) } else { String::new() };
    c.marks.push(Mark {
        x: at.0,
        y: ceiling,
        color: COLOR_MAX.into(),
        label: format!("{} {} at {:.0}s (off the axis{more})", at.1, fmt_ms((max * 1000.0) as u64), at.0),
        vline: false,
    });
    c.y_label = format!("{} (clipped at {})", c.y_label, fmt_ms((ceiling * 1000.0) as u64));
}

/// How far above the 95th percentile a latency chart's axis reaches.
const CLIP_FACTOR: f64 = 4.0;

/// Closed loop in stages: the in-flight target against the orchestrations in flight.
pub(super) fn in_flight_chart(r: &RunReport) -> Chart {
    let mut c = Chart::new("in-flight", "In flight over time", "time since start (s)", "orchestrations in flight");
    let merged = &r.timeline.merged;
    c.series.push(
        Series::line("target (plan)", COLOR_OFFERED, time_series(merged, |p| p.offered.unwrap_or(f64::NAN))).dashed(),
    );
    c.series.push(Series::line("in flight", COLOR_MERGED, time_series(merged, |p| p.in_flight as f64)));
    c
}

/// Percentile p (in percent) on the axis of 1/(1-p): 90% -> 1, 99% -> 2, ...
pub(super) fn percentile_x(p: f64) -> f64 {
    let tail = (1.0 - p / 100.0).clamp(1e-7, 1.0);
    -tail.log10()
}

pub(super) fn spectrum_chart(r: &RunReport) -> Chart {
    let mut c = Chart::new("spectrum", "Latency percentile spectrum", "percentile", "latency (ms)");
    let points: Vec<(f64, f64)> = r.spectrum.iter().map(|s| (percentile_x(s.percentile), s.latency_ms)).collect();
    let reach = points.iter().map(|p| p.0).fold(5.0f64, f64::max).ceil() as usize;
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%", "99.99999%"];
    c.x_ticks = Some(labels.iter().take(reach + 1).enumerate().map(|(i, l)| (i as f64, l.to_string())).collect());
    c.series.push(Series::line("merged latency at percentile", COLOR_SPECTRUM, points));
    c
}

pub(super) fn db_series(db: &[DbSample], f: impl Fn(&DbSample) -> f64) -> Vec<(f64, f64)> {
    db.iter().map(|s| (s.t_s, f(s))).collect()
}

pub(super) fn db_commits_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-commits", "Database transactions", "time since start (s)", "transactions per second");
    c.series.push(Series::line("commits/s", COLOR_COMMITS, db_series(db, |s| s.commits_per_sec)));
    c.series.push(Series::line("rollbacks/s", PALETTE[0], db_series(db, |s| s.rollbacks_per_sec)));
    let deadlocks: u64 = db.iter().map(|s| s.deadlocks).sum();
    if deadlocks > 0 {
        // A legend entry only: the deadlocks themselves are the marks.
        c.series.push(Series::line(format!("deadlocks ({deadlocks})"), COLOR_MAX, Vec::new()));
    }
    c.marks.extend(db.iter().filter(|s| s.deadlocks > 0).map(|s| Mark {
        x: s.t_s,
        y: s.commits_per_sec,
        color: COLOR_MAX.into(),
        label: format!("deadlock ×{}", s.deadlocks),
        vline: true,
    }));
    c
}

pub(super) fn db_connections_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-connections", "Database connections by state", "time since start (s)", "connections");
    let states: BTreeSet<&String> = db.iter().flat_map(|s| s.connections.keys()).collect();
    for (i, state) in states.into_iter().enumerate() {
        let points = db_series(db, |s| s.connections.get(state).copied().unwrap_or(0) as f64);
        c.series.push(Series::line(state.clone(), PALETTE[i % PALETTE.len()], points));
    }
    c
}

pub(super) fn db_locks_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-locks", "Lock waits", "time since start (s)", "waiting backends");
    c.series.push(Series::line("lock waits", COLOR_MAX, db_series(db, |s| s.lock_waits as f64)));
    c.series.push(Series::line("advisory lock waits", PALETTE[3], db_series(db, |s| s.advisory_lock_waits as f64)));
    c
}

pub(super) fn db_queues_chart(db: &[DbSample]) -> Chart {
    let mut c = Chart::new("db-queues", "Queue depths", "time since start (s)", "queued messages");
    c.series.push(Series::line("orchestrator queue", PALETTE[3], db_series(db, |s| s.orchestrator_queue as f64)));
    c.series.push(Series::line("worker queue", PALETTE[4], db_series(db, |s| s.worker_queue as f64)));
    c.series.push(Series::line("timer queue", PALETTE[5], db_series(db, |s| s.timer_queue as f64)));
    c
}

pub(super) fn knee_mark(s: &SweepReport, x: impl Fn(usize) -> f64, y: impl Fn(usize) -> f64) -> Option<Mark> {
    let k = s.knee.filter(|&k| k < s.steps.len())?;
    Some(Mark { x: x(k), y: y(k), color: COLOR_KNEE.into(), label: "knee".into(), vline: false })
}

pub(super) fn sweep_curve(s: &SweepReport) -> Chart {
    let mut c = Chart::new("sweep-curve", "Throughput versus p99 latency", "achieved orch/s", "p99 latency (ms)");
    c.plot_height = 320.0;
    let points = s.steps.iter().map(|st| (st.achieved_orch_per_sec, st.p99_ms)).collect();
    let labels = s.steps.iter().enumerate().map(|(i, st)| format!("#{} offered {}", i + 1, num(st.offered))).collect();
    c.series.push(Series::line("p99 by step", COLOR_SWEEP, points).dots().labelled(labels));
    if s.slo_p99_ms > 0.0 {
        let label = format!("SLO p99 ≤ {} ms", num(s.slo_p99_ms));
        c.rules.push(Rule { y: s.slo_p99_ms, color: COLOR_MAX.into(), label });
    }
    c.marks.extend(knee_mark(s, |k| s.steps[k].achieved_orch_per_sec, |k| s.steps[k].p99_ms));
    c
}

pub(super) fn sweep_offered(s: &SweepReport) -> Chart {
    let rate = s.mode == crate::model::sweep::SweepMode::Rate;
    let x_label = if rate { "offered (orchestrations started per second)" } else { "offered (in-flight budget)" };
    let mut c = Chart::new("sweep-offered", "Offered versus achieved", x_label, "achieved orch/s");
    let points = s.steps.iter().map(|st| (st.offered, st.achieved_orch_per_sec)).collect();
    c.series.push(Series::line("achieved orch/s", COLOR_MERGED, points).dots());
    if rate && !s.steps.is_empty() {
        let top = s.steps.iter().map(|st| st.offered).fold(0.0, f64::max);
        c.series.push(Series::line("achieved = offered", PALETTE[1], vec![(0.0, 0.0), (top, top)]).dashed());
    }
    c.marks.extend(knee_mark(s, |k| s.steps[k].offered, |k| s.steps[k].achieved_orch_per_sec));
    c
}

#[cfg(test)]
mod clip_tests {
    use super::*;

    #[test]
    fn one_thirty_second_sample_is_marked_and_does_not_flatten_the_rest() {
        let mut c = Chart::new("latency", "t", "x", "latency (ms)");
        let mut points: Vec<(f64, f64)> = (0..30).map(|i| (i as f64, 100.0 + i as f64)).collect();
        points[12].1 = 30_000.0;
        c.series.push(Series::line("merged max", COLOR_MAX, points));
        clip_outliers(&mut c);
        let top = c.series[0].points.iter().map(|p| p.1).fold(0.0, f64::max);
        assert!(top < 1_000.0, "the axis still reaches {top}");
        assert_eq!(c.marks.len(), 1);
        assert!(c.marks[0].label.contains("30000.0ms at 12s"), "{}", c.marks[0].label);
        assert!(c.y_label.contains("clipped at"), "{}", c.y_label);
        // An even series is left alone.
        let mut even = Chart::new("latency", "t", "x", "latency (ms)");
        even.series.push(Series::line("p99", COLOR_MAX, (0..30).map(|i| (i as f64, 100.0 + i as f64)).collect()));
        clip_outliers(&mut even);
        assert!(even.marks.is_empty() && even.y_label == "latency (ms)");
    }
}
