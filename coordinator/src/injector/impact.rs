//! What each fault did, from the merged per-second series: throughput and
//! p99 before it (the median second of the 5 seconds before it began, so a
//! catch-up burst after an earlier fault does not set the bar) and during
//! it, the failures from its start until it recovered, and the recovery
//! time: from its end until throughput (averaged over two seconds) is back
//! to the level before it and the p99 back down to the p99 before it, each
//! within a band that knows the run's own noise.
//!
//! The bands: per-second counts on a busy machine swing by a fifth around
//! a steady level (seen: 35 to 51 orch/s around 44), so "within 10%" read
//! a recovered run as unrecovered whenever the machine was busier after
//! the fault than before it. Each bar is therefore the wider of a fixed
//! band and three robust standard deviations of the seconds before the
//! fault (1.4826 x their median absolute deviation, which one burst second
//! does not move), never wider than 35% of the level. Times are to the
//! second: a recovery is reported at the end of the first second that meets
//! both bars.

use crate::model::{Failures, FaultEvent, FaultReport, TimePoint};

/// Seconds before a fault that set the level it is judged against.
const BEFORE_S: f64 = 5.0;
/// Throughput back within at least this share of the level before.
const THROUGHPUT_BAND: f64 = 0.1;
/// The widest throughput band, however noisy the seconds before.
const THROUGHPUT_BAND_MAX: f64 = 0.35;
/// p99 back under at least this multiple of the p99 before.
const LATENCY_BAND: f64 = 2.0;
/// How many robust standard deviations of the seconds before a bar allows.
const NOISE_SIGMAS: f64 = 3.0;
/// A median absolute deviation times this estimates a standard deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

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

/// A robust standard deviation: 1.4826 x the median absolute deviation.
fn spread(v: &[f64]) -> f64 {
    let m = median(v.iter().copied());
    MAD_TO_SIGMA * median(v.iter().map(|x| (x - m).abs()))
}

/// The bars a run must be back to after a fault: throughput at least
/// `orch_per_sec` (averaged over two seconds) and p99 under `p99_ms`
/// (`None`: nothing completed before the fault, so no p99 to return to).
struct Bars {
    orch_per_sec: f64,
    p99_ms: Option<f64>,
}

impl Bars {
    /// From the seconds before a fault, its level scaled by the load kept.
    fn from(before: &[&Second<'_>], level: f64, load_kept: f64) -> Bars {
        let rates: Vec<f64> = before.iter().map(|s| s.p.orch_per_sec * load_kept).collect();
        let band = (NOISE_SIGMAS * spread(&rates)).clamp(THROUGHPUT_BAND * level, THROUGHPUT_BAND_MAX * level);
        let p99s: Vec<f64> = before.iter().map(|s| s.p.p99_ms).filter(|x| *x > 0.0).collect();
        let typical = median(p99s.iter().copied());
        let p99_ms = (typical > 0.0).then(|| (LATENCY_BAND * typical).max(typical + NOISE_SIGMAS * spread(&p99s)));
        Bars { orch_per_sec: level - band, p99_ms }
    }

    fn met(&self, rate: f64, p99_ms: f64) -> bool {
        let p99_ok = self.p99_ms.is_none_or(|bar| p99_ms > 0.0 && p99_ms < bar);
        rate >= self.orch_per_sec && p99_ok
    }
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
            // The median second is the level, not the mean: one burst second
            // (an earlier fault's backlog draining) does not set it.
            let before_orch = median(before.iter().map(|s| s.p.orch_per_sec));
            // What the run can still reach: a killed agent's share of the load is gone.
            let kept = e.load_kept.unwrap_or(1.0);
            let bars = Bars::from(&before, before_orch * kept, kept);
            let after: Vec<&Second<'_>> = secs.iter().filter(|s| s.start >= e.end_s - 0.5).collect();
            let recovered_at = after.iter().enumerate().find_map(|(i, s)| {
                let next = after.get(i + 1).map_or(s.p.orch_per_sec, |n| n.p.orch_per_sec);
                let rate = (s.p.orch_per_sec + next) / 2.0;
                (!before.is_empty() && bars.met(rate, s.p.p99_ms)).then_some(s.p.t_s)
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
                before_p99_ms: typical_p99(before.iter().copied()),
                during_orch_per_sec: mean(during.iter().map(|s| s.p.orch_per_sec)),
                during_p99_ms: during.iter().map(|s| s.p.p99_ms).fold(0.0, f64::max),
                failed_during,
                failures,
                recovery_s: recovered_at.map(|t| (t - e.end_s).max(0.0)),
                recovery_orch_per_sec: bars.orch_per_sec,
                recovery_p99_ms: bars.p99_ms,
                // Read from the schema after the run (db::audit::errors).
                failed_by_error: Default::default(),
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

    /// The CI run that read a recovered crash restart as unrecovered: the
    /// seconds before swung 42 to 50 orch/s, and after the restart the run
    /// held 35 to 44 on a busier machine. A 10% band asked for 39.6 over two
    /// seconds and p99 under 2x; the noise-aware band asks for what the
    /// seconds before showed the run could vary by.
    #[test]
    fn a_noisy_run_is_judged_by_its_own_spread() {
        let before = [42.0, 50.0, 44.0, 47.0, 43.0];
        let after = [0.0, 0.0, 6.0, 36.0, 41.0, 35.0, 39.0, 37.0, 44.0, 36.0, 38.0];
        let series: Vec<TimePoint> = before
            .iter()
            .chain(after.iter())
            .enumerate()
            .map(|(i, r)| second((i + 1) as f64, *r, if *r > 0.0 { 280.0 + r } else { 0.0 }, 0))
            .collect();
        let e = FaultEvent { kind: "restart-db".into(), at_s: 5.0, end_s: 7.0, ..Default::default() };
        let r = &judge(&[e], &series)[0];
        assert_eq!(r.before_orch_per_sec, 44.0);
        // Spread: deviations 2, 6, 0, 3, 1 from 44, median 2, 1.4826 x 2 x 3 = 8.9.
        assert!((r.recovery_orch_per_sec - (44.0 - 3.0 * 1.4826 * 2.0)).abs() < 1e-9, "{r:?}");
        // Back at the end of the second ending at 9 s (36 and 41: 38.5 >= 35.1).
        assert_eq!(r.recovery_s, Some(2.0), "{r:?}");
        // A steady run before the fault keeps the 10% band (39.6): over two
        // seconds the run reads 38.5, 38, 37, 38 and first 40.5 at 13 s.
        let quiet: Vec<TimePoint> = [44.0, 44.0, 44.0, 44.0, 44.0]
            .iter()
            .chain(after.iter())
            .enumerate()
            .map(|(i, r)| second((i + 1) as f64, *r, 300.0, 0))
            .collect();
        let e = FaultEvent { kind: "restart-db".into(), at_s: 5.0, end_s: 7.0, ..Default::default() };
        let q = &judge(&[e], &quiet)[0];
        assert!((q.recovery_orch_per_sec - 39.6).abs() < 1e-9, "a steady run keeps the 10% band: {q:?}");
        assert_eq!(q.recovery_s, Some(6.0), "{q:?}");
    }

    /// However noisy the seconds before, a run under 65% of its level
    /// has not recovered; and a p99 that swung before the fault is allowed
    /// the same swing after it.
    #[test]
    fn the_bands_are_bounded_and_p99_is_judged_by_its_spread_too() {
        let wild = [10.0, 90.0, 50.0, 5.0, 95.0];
        let mut series: Vec<TimePoint> =
            wild.iter().enumerate().map(|(i, r)| second((i + 1) as f64, *r, 100.0, 0)).collect();
        series.extend((6..=12).map(|t| second(t as f64, 24.0, 100.0, 0)));
        let e = FaultEvent { kind: "pause-db".into(), at_s: 5.0, end_s: 6.0, ..Default::default() };
        let r = &judge(&[e], &series)[0];
        assert_eq!(r.before_orch_per_sec, 50.0, "{r:?}");
        assert!((r.recovery_orch_per_sec - 32.5).abs() < 1e-9, "the band is at most 35%: {r:?}");
        assert_eq!(r.recovery_s, None, "24/s is under 65% of 50: {r:?}");
        // p99 of 100, 300, 120, 110, 280 ms before: median 120, deviations
        // 20, 180, 0, 10, 160 (median 20): the bar is max(240, 120 + 89) = 240.
        let p99s = [100.0, 300.0, 120.0, 110.0, 280.0];
        let mut series: Vec<TimePoint> =
            p99s.iter().enumerate().map(|(i, p)| second((i + 1) as f64, 40.0, *p, 0)).collect();
        series.extend([(6, 250.0), (7, 230.0), (8, 100.0)].map(|(t, p)| second(t as f64, 40.0, p, 0)));
        let e = FaultEvent { kind: "pause-db".into(), at_s: 5.0, end_s: 6.0, ..Default::default() };
        let r = &judge(&[e], &series)[0];
        assert_eq!(r.recovery_p99_ms, Some(240.0), "{r:?}");
        assert_eq!(r.recovery_s, Some(1.0), "250 ms is over the bar, 230 under it: {r:?}");
    }
}
