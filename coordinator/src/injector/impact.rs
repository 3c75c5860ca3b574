//! What each fault did, from the merged per-second series: throughput and
//! p99 before it (the median second of the 5 seconds before it began, so a
//! catch-up burst after an earlier fault does not set the bar) and during it, the failures
//! from its start until it recovered, and the recovery time: from its end
//! until throughput (averaged over two seconds, per-second counts are noisy)
//! is back within 10% of the level before it and the p99 under twice it.
//! Times are to the second: a recovery is reported at the end of the first
//! second that meets both.

use crate::model::{Failures, FaultEvent, FaultReport, TimePoint};

/// Seconds before a fault that set the level it is judged against.
const BEFORE_S: f64 = 5.0;
/// Throughput back within this share of the level before.
const THROUGHPUT_BAND: f64 = 0.9;
/// p99 back under this multiple of the p99 before.
const LATENCY_BAND: f64 = 2.0;

/// A second of the series with its start.
struct Second<'a> {
    start: f64,
    p: &'a TimePoint,
}

fn seconds(series: &[TimePoint]) -> Vec<Second<'_>> {
    let mut prev = 0.0;
    series
        .iter()
        .map(|p| {
            let s = Second { start: prev, p };
            prev = p.t_s;
            s
        })
        .collect()
}

fn mid(s: &Second<'_>) -> f64 {
    (s.start + s.p.t_s) / 2.0
}

/// The middle of the seconds' values (the upper middle of an even count).
fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The p99 a window is judged by: the median of its seconds' p99 (seconds
/// with completions only), so one slow second does not set the bar.
fn typical_p99<'a>(v: impl Iterator<Item = &'a Second<'a>>) -> f64 {
    median(v.map(|s| s.p.p99_ms).filter(|x| *x > 0.0))
}

/// Judge every fault against the merged series.
pub fn judge(events: &[FaultEvent], merged: &[TimePoint]) -> Vec<FaultReport> {
    let secs = seconds(merged);
    events
        .iter()
        .map(|e| {
            let before: Vec<&Second<'_>> =
                secs.iter().filter(|s| mid(s) >= e.at_s - BEFORE_S && mid(s) < e.at_s).collect();
            let during_end = e.end_s.max(e.at_s + 1.0);
            let during: Vec<&Second<'_>> = secs.iter().filter(|s| mid(s) >= e.at_s && mid(s) < during_end).collect();
            // Per-second counts are noisy (40 to 60 orch/s around a steady 45, and
            // more just after an earlier fault's backlog drains): the median
            // second is the level, not the mean.
            let before_orch = median(before.iter().map(|s| s.p.orch_per_sec));
            // What the run can still reach: a killed agent's share of the load is gone.
            let level = before_orch * e.load_kept.unwrap_or(1.0);
            let before_p99 = typical_p99(before.iter().copied());
            let after: Vec<&Second<'_>> = secs.iter().filter(|s| s.start >= e.end_s - 0.5).collect();
            let recovered_at = after.iter().enumerate().find_map(|(i, s)| {
                let next = after.get(i + 1).map_or(s.p.orch_per_sec, |n| n.p.orch_per_sec);
                let rate = (s.p.orch_per_sec + next) / 2.0;
                let p99_ok = before_p99 <= 0.0 || (s.p.p99_ms > 0.0 && s.p.p99_ms < LATENCY_BAND * before_p99);
                (!before.is_empty() && rate >= THROUGHPUT_BAND * level && p99_ok).then_some(s.p.t_s)
            });
            let until = recovered_at.unwrap_or(f64::INFINITY);
            let mut failures = Failures::default();
            let mut failed_during = 0;
            for s in secs.iter().filter(|s| s.p.t_s > e.at_s && s.start < until) {
                failed_during += s.p.failed;
                failures.add(&s.p.failures);
            }
            FaultReport {
                event: e.clone(),
                before_orch_per_sec: before_orch,
                before_p99_ms: before_p99,
                during_orch_per_sec: mean(during.iter().map(|s| s.p.orch_per_sec)),
                during_p99_ms: during.iter().map(|s| s.p.p99_ms).fold(0.0, f64::max),
                failed_during,
                failures,
                recovery_s: recovered_at.map(|t| (t - e.end_s).max(0.0)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: f64, orch: f64, p99: f64, failed: u64) -> TimePoint {
        let failures = Failures { infrastructure: failed, ..Default::default() };
        TimePoint {
            t_s: t,
            orch_per_sec: orch,
            completed: orch as u64,
            p99_ms: p99,
            failed,
            failures,
            ..Default::default()
        }
    }

    #[test]
    fn a_fault_is_judged_against_the_level_before_it() {
        // 20/s at 100 ms; a pause from 6 s to 8 s; slow and failing after,
        // back to normal in the second ending at 11 s.
        let mut series: Vec<TimePoint> = (1..=6).map(|t| second(t as f64, 20.0, 100.0, 0)).collect();
        series.push(second(7.0, 0.0, 0.0, 0));
        series.push(second(8.0, 0.0, 0.0, 0));
        series.push(second(9.0, 30.0, 900.0, 2));
        series.push(second(10.0, 25.0, 400.0, 1));
        series.extend((11..=14).map(|t| second(t as f64, 20.0, 110.0, 0)));
        let e = FaultEvent { kind: "pause-db".into(), at_s: 6.0, end_s: 8.0, ..Default::default() };
        let r = &judge(&[e], &series)[0];
        assert_eq!((r.before_orch_per_sec, r.before_p99_ms), (20.0, 100.0));
        assert_eq!((r.during_orch_per_sec, r.during_p99_ms), (0.0, 0.0));
        assert_eq!(r.recovery_s, Some(3.0), "{r:?}");
        assert_eq!(r.failed_during, 3);
        assert_eq!(r.failures.describe(), "3 infrastructure");
        // A fault after which the run never recovers.
        let late = FaultEvent { kind: "restart-db".into(), at_s: 13.0, end_s: 14.0, ..Default::default() };
        let mut dying = series.clone();
        dying.push(second(15.0, 1.0, 5000.0, 0));
        assert_eq!(judge(&[late], &dying)[0].recovery_s, None);
        // An agent killed at 6 s took a third of the load with it: the run is
        // back once it holds two thirds of the level before.
        let mut thinned: Vec<TimePoint> = (1..=6).map(|t| second(t as f64, 30.0, 100.0, 0)).collect();
        thinned.extend((7..=12).map(|t| second(t as f64, 20.0, 100.0, 0)));
        let kill = FaultEvent {
            kind: "kill-agent".into(),
            at_s: 6.0,
            end_s: 6.0,
            load_kept: Some(2.0 / 3.0),
            ..Default::default()
        };
        assert_eq!(judge(std::slice::from_ref(&kill), &thinned)[0].recovery_s, Some(1.0));
        let unscaled = FaultEvent { load_kept: None, ..kill };
        assert_eq!(judge(&[unscaled], &thinned)[0].recovery_s, None);
    }

    #[test]
    fn a_burst_before_a_fault_does_not_set_the_bar() {
        // 40/s with one 120/s second (an earlier fault's backlog draining):
        // the level is 40, and 40/s after the fault is a recovery.
        let mut series: Vec<TimePoint> = [40.0, 40.0, 120.0, 40.0, 40.0, 0.0]
            .iter()
            .enumerate()
            .map(|(i, r)| second((i + 1) as f64, *r, 100.0, 0))
            .collect();
        series.extend((7..=10).map(|t| second(t as f64, 40.0, 100.0, 0)));
        let e = FaultEvent { kind: "restart-db".into(), at_s: 5.0, end_s: 6.0, ..Default::default() };
        let r = &judge(&[e], &series)[0];
        assert_eq!(r.before_orch_per_sec, 40.0, "{r:?}");
        assert_eq!(r.recovery_s, Some(1.0), "{r:?}");
    }
}
