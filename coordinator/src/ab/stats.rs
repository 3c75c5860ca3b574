//! The A/B verdict's statistics: the ratio of the candidate's median to the
//! baseline's, with a 95% percentile-bootstrap confidence interval.
//!
//! Why the bootstrap and not Mann-Whitney: with the few repetitions an A/B
//! run can afford (3 to 10 per side), Mann-Whitney's smallest two-sided
//! p-value at 3 + 3 runs is 0.1, so it could never call a difference at 95%;
//! and it tests "one tends to be larger", not "by how much". The bootstrap
//! gives the size of the change with an interval. Its price at small n: the
//! interval of a median of 3 spans the extreme ratios (the smallest candidate
//! run over the largest baseline run and the other way round), so a verdict
//! needs every candidate run on one side of every baseline run, which is
//! what a reader of three runs each would demand anyway.

use loadgen_common::rand::SplitMix64;

pub use crate::model::ab::Verdict;

/// Resamples per interval: enough for stable 2.5% and 97.5% percentiles.
pub const RESAMPLES: usize = 10_000;

/// The candidate's median over the baseline's, and its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The percentile `q` (0..1) of sorted `s`, by linear interpolation.
fn percentile(s: &[f64], q: f64) -> f64 {
    let pos = q * (s.len().saturating_sub(1)) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    match (s.get(i), s.get(i + 1)) {
        (Some(a), Some(b)) => a + (b - a) * f,
        (Some(a), None) => *a,
        _ => f64::NAN,
    }
}

/// median(candidate) / median(baseline) with a 95% percentile-bootstrap
/// interval (`seed` makes it reproducible). `None` when either side is empty
/// or the baseline's median is not positive.
pub fn ratio_of_medians(baseline: &[f64], candidate: &[f64], seed: u64) -> Option<Estimate> {
    ratio_of_medians_at(baseline, candidate, seed, 0.05)
}

/// The same with a `1 - alpha` interval (a family of k metrics judged
/// together uses alpha / k: Bonferroni).
pub fn ratio_of_medians_at(baseline: &[f64], candidate: &[f64], seed: u64, alpha: f64) -> Option<Estimate> {
    if baseline.is_empty() || candidate.is_empty() {
        return None;
    }
    let base = median(baseline);
    if base.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let ratio = median(candidate) / base;
    let mut rng = SplitMix64::new(seed);
    let mut draw = |from: &[f64], into: &mut Vec<f64>| {
        into.clear();
        into.extend((0..from.len()).map(|_| from[rng.below(from.len())]));
        median(into)
    };
    let (mut b, mut c) = (Vec::with_capacity(baseline.len()), Vec::with_capacity(candidate.len()));
    let mut ratios: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let mb = draw(baseline, &mut b);
            let mc = draw(candidate, &mut c);
            (mb > 0.0).then_some(mc / mb)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    Some(Estimate { ratio, low: percentile(&ratios, alpha / 2.0), high: percentile(&ratios, 1.0 - alpha / 2.0) })
}

/// Which way a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// The verdict of `e` for a metric where `better` wins: a difference only
/// when the interval excludes 1 and the median ratio is at least
/// `min_effect` (a fraction, e.g. 0.02) away from it, so a consistent but
/// negligible difference (a shared machine drifting) is not called.
pub fn verdict(e: Option<Estimate>, better: Better, min_effect: f64) -> Verdict {
    let Some(e) = e else { return Verdict::Unknown };
    let above = e.low > 1.0 && e.ratio >= 1.0 + min_effect;
    let below = e.high < 1.0 && e.ratio <= 1.0 - min_effect;
    match (better, above, below) {
        (Better::Higher, true, _) | (Better::Lower, _, true) => Verdict::Faster,
        (Better::Higher, _, true) | (Better::Lower, true, _) => Verdict::Slower,
        _ => Verdict::NoSignificantDifference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert_eq!(percentile(&[1.0, 2.0], 0.25), 1.25);
    }

    #[test]
    fn overlapping_runs_are_no_difference_and_separated_ones_are() {
        // Same distribution, interleaved: the interval holds 1.
        let base = [40.0, 42.0, 41.0];
        let same = [41.5, 40.5, 42.5];
        let e = ratio_of_medians(&base, &same, 1).expect("estimate");
        assert!(e.low < 1.0 && e.high > 1.0, "{e:?}");
        assert_eq!(verdict(Some(e), Better::Higher, 0.02), Verdict::NoSignificantDifference);
        // Every candidate run 20% slower: the whole interval is below 1.
        let slow = [33.0, 34.0, 32.5];
        let e = ratio_of_medians(&base, &slow, 1).expect("estimate");
        assert!(e.high < 1.0 && (e.ratio - 33.0 / 41.0).abs() < 1e-9, "{e:?}");
        assert_eq!(verdict(Some(e), Better::Higher, 0.02), Verdict::Slower);
        // The same numbers as latencies: lower is better, so that is faster.
        assert_eq!(verdict(Some(e), Better::Lower, 0.02), Verdict::Faster);
        // At 3 + 3 the interval spans the extreme ratios.
        assert!((e.low - 32.5 / 42.0).abs() < 1e-9 && (e.high - 34.0 / 40.0).abs() < 1e-9, "{e:?}");
        // Consistent but tiny: below the smallest effect called.
        let tiny = [39.6, 40.5, 39.9];
        let e = ratio_of_medians(&[40.0, 40.6, 40.8], &tiny, 1);
        assert_eq!(verdict(e, Better::Higher, 0.02), Verdict::NoSignificantDifference);
        assert_eq!(verdict(ratio_of_medians(&[], &tiny, 1), Better::Higher, 0.02), Verdict::Unknown);
        // Reproducible for a seed.
        assert_eq!(ratio_of_medians(&base, &slow, 9), ratio_of_medians(&base, &slow, 9));
    }
}
