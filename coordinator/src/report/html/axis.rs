//! Chart axes: a linear axis that includes zero and every value, with "nice"
//! tick steps (1, 2, 2.5 or 5 times a power of ten) and tick labels with as
//! many decimals as the step needs.

/// A linear axis from `min` to `max`, both multiples of `step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Axis {
    pub min: f64,
    pub max: f64,
    pub step: f64,
}

impl Axis {
    /// An axis that includes zero and every value, with about `target` ticks.
    pub fn fit(values: impl Iterator<Item = f64>, target: usize) -> Axis {
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
            hi = lo + 1.0;
        }
        let axis = |step: f64| Axis { min: (lo / step).floor() * step, max: (hi / step).ceil() * step, step };
        // Of the nice steps around range/target, the one whose tick count is
        // nearest the target (on a tie, the larger step).
        let raw = (hi - lo) / target as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let misfit = |a: &Axis| ((a.max - a.min) / a.step - target as f64).abs();
        let mut best: Option<Axis> = None;
        for step in [0.1, 1.0, 10.0].into_iter().flat_map(|m| NICE.map(|n| n * m * mag)).filter(|&s| nice(s)) {
            let a = axis(step);
            let better = best.is_none_or(|b| {
                misfit(&a) < misfit(&b) - 1e-9 || ((misfit(&a) - misfit(&b)).abs() < 1e-9 && a.step > b.step)
            });
            if better {
                best = Some(a);
            }
        }
        best.unwrap_or_else(|| axis(raw))
    }

    pub fn frac(&self, v: f64) -> f64 {
        (v - self.min) / (self.max - self.min)
    }

    pub fn ticks(&self) -> Vec<(f64, String)> {
        let n = ((self.max - self.min) / self.step).round() as i64;
        (0..=n).map(|i| self.min + i as f64 * self.step).map(|v| (v, tick_label(v, self.step))).collect()
    }
}

/// Multiples of a power of ten that make readable tick steps.
const NICE: [f64; 4] = [1.0, 2.0, 2.5, 5.0];

/// A step of 2.5 times a power of ten is nice from 25 up only, so that counts
/// never get ticks at 2.5 or 7.5.
fn nice(step: f64) -> bool {
    let mag = 10f64.powf(step.log10().floor());
    (step / mag - 2.5).abs() > 1e-9 || mag >= 10.0
}

/// A tick value with as many decimals as the step needs ("0.25", "1200", "15k").
pub(super) fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    if step >= 1000.0 && (v / 1000.0).fract().abs() < 1e-9 {
        format!("{}k", (v / 1000.0).round())
    } else if step >= 1.0 && step.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        // Fewest decimals that show the step exactly (0.25 -> 2, 0.5 -> 1).
        let whole = |x: f64| (x - x.round()).abs() < 1e-6;
        let decimals = (1..=6).find(|&d| whole(step * 10f64.powi(d))).unwrap_or(6) as usize;
        format!("{v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_nice_and_include_zero() {
        let a = Axis::fit([3.0, 27.5].into_iter(), 6);
        assert_eq!((a.min, a.max, a.step), (0.0, 30.0, 5.0));
        let labels: Vec<String> = a.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(labels, ["0", "5", "10", "15", "20", "25", "30"]);
        let a = Axis::fit([-2.0, 1.0].into_iter(), 6);
        assert!(a.min <= -2.0 && a.max >= 1.0, "{a:?}");
        let flat = Axis::fit([0.0, 0.0].into_iter(), 6);
        assert!(flat.max > flat.min);
        assert_eq!(tick_label(0.25, 0.25), "0.25");
        assert_eq!(tick_label(0.5, 0.5), "0.5");
        assert_eq!(tick_label(15000.0, 5000.0), "15k");
    }
}
