//! Load that changes over time: a piecewise-linear plan of a rate (open
//! loop, starts per second) or of an in-flight target (closed loop), from
//! the common start instant. Constant load is a plan with one flat stage.
//!
//! A plan is written as stages, k6-style: `30s:10/s,1m:100/s,30s:0/s` ramps
//! linearly to each target over the stage's duration, starting from 0; a
//! leading bare target sets where it starts (`10/s,30s:10/s` holds 10/s for
//! 30 s), and a zero-length stage jumps. Built-in shapes expand to stages
//! over the run's duration: `ramp:TARGET`, `spike:BASE..PEAK` and
//! `ebb-and-flow:LOW..HIGH@PERIOD` (a sine).
//!
//! Open-loop starts follow the plan exactly by time rescaling: the k-th start
//! is due when the expected number of starts so far, the integral of the
//! rate, reaches `k + phase` (constant arrivals) or the k-th sum of
//! exponential gaps (Poisson arrivals, which makes them a non-homogeneous
//! Poisson process with exactly this rate).

use std::time::Duration;

use crate::units::{format_duration, parse_duration};

/// Why a stage plan was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StageError {
    #[error("empty stage plan")]
    Empty,
    #[error("stage {stage:?}: {detail}")]
    Stage { stage: String, detail: String },
    #[error("unknown load shape {0:?} (ramp:TARGET, spike:BASE..PEAK, ebb-and-flow:LOW..HIGH@PERIOD)")]
    Shape(String),
    #[error("the stages last {0}; a run needs more than zero")]
    NoDuration(String),
}

/// A piecewise-linear plan: `(offset from the start, value)` points with
/// non-decreasing offsets; the value is interpolated between points and
/// held after the last one.
#[derive(Clone, Debug, PartialEq)]
pub struct StagePlan {
    points: Vec<(Duration, f64)>,
}

/// Points a sine is drawn with, per period.
const SINE_STEPS: u32 = 16;

impl StagePlan {
    /// True when `text` names a shape (spanning the run) rather than stages.
    pub fn is_shape(text: &str) -> bool {
        text.trim()
            .split_once(':')
            .is_some_and(|(s, _)| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic() || c == '-'))
    }

    /// A constant value for `duration`.
    pub fn constant(value: f64, duration: Duration) -> Self {
        StagePlan { points: vec![(Duration::ZERO, value), (duration, value)] }
    }

    /// From points (offset, value) as carried on the wire; offsets must not
    /// decrease and values must be finite and not negative.
    pub fn from_points(points: Vec<(Duration, f64)>) -> Result<Self, StageError> {
        if points.is_empty() {
            return Err(StageError::Empty);
        }
        for w in points.windows(2) {
            if w[1].0 < w[0].0 {
                return Err(StageError::Stage { stage: format!("{:?}", w[1]), detail: "goes back in time".into() });
            }
        }
        if let Some(p) = points.iter().find(|p| !p.1.is_finite() || p.1 < 0.0) {
            return Err(StageError::Stage { stage: format!("{p:?}"), detail: "must be a finite value >= 0".into() });
        }
        Ok(StagePlan { points })
    }

    /// Parse stages or a shape; `unit` is "/s" for rates or "" for in-flight
    /// targets; `duration` is the run's (shapes span it).
    pub fn parse(text: &str, rate: bool, duration: Duration) -> Result<Self, StageError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StageError::Empty);
        }
        if Self::is_shape(text)
            && let Some((shape, args)) = text.split_once(':')
        {
            return Self::shape(shape, args, rate, duration);
        }
        let mut points = Vec::new();
        let mut at = Duration::ZERO;
        let mut value = 0.0;
        for (i, item) in text.split(',').map(str::trim).enumerate() {
            let bad = |detail: String| StageError::Stage { stage: item.to_string(), detail };
            match item.split_once(':') {
                None if i == 0 => value = target(item, rate).map_err(bad)?,
                None => return Err(bad("a stage is DURATION:TARGET (only the first may be a bare target)".into())),
                Some((d, t)) => {
                    if points.is_empty() {
                        points.push((Duration::ZERO, value));
                    }
                    let d = parse_duration(d).map_err(|e| bad(e.to_string()))?;
                    value = target(t, rate).map_err(bad)?;
                    at += d;
                    points.push((at, value));
                }
            }
        }
        if points.is_empty() {
            return Err(StageError::Stage { stage: text.into(), detail: "no DURATION:TARGET stage".into() });
        }
        if at.is_zero() {
            return Err(StageError::NoDuration(format_duration(at)));
        }
        Ok(StagePlan { points })
    }

    fn shape(name: &str, args: &str, rate: bool, duration: Duration) -> Result<Self, StageError> {
        let bad = |detail: &str| StageError::Stage { stage: format!("{name}:{args}"), detail: detail.into() };
        if duration.is_zero() {
            return Err(StageError::NoDuration(format_duration(duration)));
        }
        let pair = |s: &str| -> Result<(f64, f64), StageError> {
            let (a, b) = s.split_once("..").ok_or_else(|| bad("needs LOW..HIGH"))?;
            Ok((target(a, rate).map_err(|e| bad(&e))?, target(b, rate).map_err(|e| bad(&e))?))
        };
        let d = duration.as_secs_f64();
        let at = |f: f64| Duration::from_secs_f64(d * f);
        let points = match name {
            "ramp" => vec![(Duration::ZERO, 0.0), (duration, target(args, rate).map_err(|e| bad(&e))?)],
            "spike" => {
                // Base for 40%, the peak for the middle 20%, base again.
                let (base, peak) = pair(args)?;
                if peak <= base {
                    return Err(bad("the peak must be above the base (spike:BASE..PEAK)"));
                }
                vec![
                    (Duration::ZERO, base),
                    (at(0.4), base),
                    (at(0.4), peak),
                    (at(0.6), peak),
                    (at(0.6), base),
                    (duration, base),
                ]
            }
            "ebb-and-flow" => {
                let (range, period) = args.split_once('@').ok_or_else(|| bad("needs LOW..HIGH@PERIOD"))?;
                let (low, high) = pair(range)?;
                if high <= low {
                    return Err(bad("HIGH must be above LOW (ebb-and-flow:LOW..HIGH@PERIOD)"));
                }
                let period = parse_duration(period).map_err(|e| bad(&e.to_string()))?;
                if period.is_zero() {
                    return Err(bad("the period must be positive"));
                }
                // Starts at the middle, rising; drawn with SINE_STEPS lines a period.
                let step = period.as_secs_f64() / f64::from(SINE_STEPS);
                let (mid, amp) = ((low + high) / 2.0, (high - low) / 2.0);
                let n = (d / step).ceil() as u64;
                (0..=n)
                    .map(|k| {
                        let t = (k as f64 * step).min(d);
                        (
                            Duration::from_secs_f64(t),
                            mid + amp * (std::f64::consts::TAU * t / period.as_secs_f64()).sin(),
                        )
                    })
                    .collect()
            }
            _ => return Err(StageError::Shape(name.into())),
        };
        Ok(StagePlan { points })
    }

    /// The points, for the wire.
    pub fn points(&self) -> &[(Duration, f64)] {
        &self.points
    }

    /// How long the plan lasts (its last point).
    pub fn duration(&self) -> Duration {
        self.points.last().map_or(Duration::ZERO, |p| p.0)
    }

    /// The highest value the plan reaches.
    pub fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }

    /// True when the value never changes.
    pub fn is_constant(&self) -> bool {
        self.points.windows(2).all(|w| w[0].1 == w[1].1)
    }

    /// The same plan with every value multiplied by `factor` (an agent's share).
    pub fn scaled(&self, factor: f64) -> Self {
        StagePlan { points: self.points.iter().map(|&(t, v)| (t, v * factor)).collect() }
    }

    /// The value at `t` (interpolated; at a jump, the value after it).
    pub fn value_at(&self, t: Duration) -> f64 {
        let mut v = self.points.first().map_or(0.0, |p| p.1);
        for w in self.points.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            if t < t0 {
                break;
            }
            v = if t >= t1 || t1 == t0 {
                v1
            } else {
                v0 + (v1 - v0) * (t - t0).as_secs_f64() / (t1 - t0).as_secs_f64()
            };
        }
        v
    }

    /// The integral of the value from the start to `t` (expected starts so
    /// far, for a rate), up to the plan's end.
    pub fn integral(&self, t: Duration) -> f64 {
        let mut sum = 0.0;
        for w in self.points.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            if t <= t0 {
                break;
            }
            let end = t.min(t1);
            let x = (end - t0).as_secs_f64();
            let len = (t1 - t0).as_secs_f64();
            let slope = if len > 0.0 { (v1 - v0) / len } else { 0.0 };
            sum += v0 * x + slope * x * x / 2.0;
        }
        sum
    }

    /// When the integral reaches `c`, or `None` if it never does within the plan.
    pub fn time_of(&self, c: f64) -> Option<Duration> {
        let mut sum = 0.0;
        for w in self.points.windows(2) {
            let ((t0, v0), (t1, v1)) = (w[0], w[1]);
            let len = (t1 - t0).as_secs_f64();
            if len <= 0.0 {
                continue;
            }
            let area = (v0 + v1) / 2.0 * len;
            if sum + area >= c && area > 0.0 {
                // Solve v0 x + (slope/2) x^2 = need for x in [0, len].
                let need = c - sum;
                let slope = (v1 - v0) / len;
                let x = if slope.abs() < 1e-12 {
                    need / v0
                } else {
                    let disc = (v0 * v0 + 2.0 * slope * need).max(0.0);
                    (disc.sqrt() - v0) / slope
                };
                return Some(t0 + Duration::from_secs_f64(x.clamp(0.0, len)));
            }
            sum += area;
        }
        None
    }

    /// The plan as text (its points), for reports.
    pub fn describe(&self, rate: bool) -> String {
        let unit = if rate { "/s" } else { "" };
        let fmt = |v: f64| if v.fract() == 0.0 { format!("{v:.0}{unit}") } else { format!("{v:.2}{unit}") };
        let mut out = vec![fmt(self.points.first().map_or(0.0, |p| p.1))];
        for w in self.points.windows(2) {
            out.push(format!("{}:{}", format_duration(w[1].0 - w[0].0), fmt(w[1].1)));
        }
        out.join(",")
    }
}

/// A target: a rate (`10/s`, `10`) or an in-flight count.
fn target(text: &str, rate: bool) -> Result<f64, String> {
    let t = text.trim();
    let number = match (rate, t.strip_suffix("/s")) {
        (true, Some(n)) => n,
        (false, None) => t,
        // One plan is all rates or all in-flight targets: a bare number in a
        // plan of rates would be read as a rate the user did not write.
        (true, None) => {
            return Err(format!(
                "{t:?} has no /s in a plan of rates: write every target as a rate (10/s) or every one as a number in flight (10)"
            ));
        }
        (false, Some(_)) => return Err(format!("{t:?} is a rate in a plan of numbers in flight")),
    };
    let v: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{t:?} is not a {}", if rate { "rate such as 10/s" } else { "number in flight" }))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{t:?} must be 0 or more"));
    }
    if !rate && v.fract() != 0.0 {
        return Err(format!("{t:?} must be a whole number of orchestrations in flight"));
    }
    Ok(v)
}

/// Due times of open-loop starts under a rate plan.
#[derive(Debug)]
pub struct Arrivals {
    plan: StagePlan,
    /// Constant arrivals: the next start is due at integral `k + phase`;
    /// Poisson: at the running sum of exponential gaps.
    next: f64,
    poisson: bool,
    state: crate::rand::SplitMix64,
}

impl Arrivals {
    /// Arrivals under `plan` (starts per second); `phase` in [0, 1) staggers
    /// agents' constant schedules (agent i of n uses (i + 0.5) / n, so n
    /// agents together start evenly and a plan of D seconds at r/s gives
    /// exactly D x r starts); `seed` drives Poisson gaps.
    pub fn new(plan: StagePlan, poisson: bool, phase: f64, seed: u64) -> Self {
        let mut a = Arrivals { plan, next: 0.0, poisson, state: crate::rand::SplitMix64::new(seed) };
        a.next = if poisson { a.exponential() } else { phase.clamp(0.0, 0.999_999) };
        a
    }

    fn uniform(&mut self) -> f64 {
        self.state.uniform()
    }

    fn exponential(&mut self) -> f64 {
        -(1.0 - self.uniform()).ln()
    }

    /// The offset from the start of the next start, and move past it; `None`
    /// when the plan has no more starts.
    pub fn next_due(&mut self) -> Option<Duration> {
        let at = self.plan.time_of(self.next)?;
        self.next += if self.poisson { self.exponential() } else { 1.0 };
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn stages_parse_k6_style_from_zero_or_a_given_start() {
        let p = StagePlan::parse("30s:10/s,1m:100/s,30s:0/s", true, Duration::ZERO).expect("parse");
        assert_eq!(p.points(), &[(s(0.0), 0.0), (s(30.0), 10.0), (s(90.0), 100.0), (s(120.0), 0.0)]);
        assert_eq!(p.duration(), s(120.0));
        assert_eq!(p.value_at(s(15.0)), 5.0);
        assert_eq!(p.value_at(s(60.0)), 55.0);
        let held = StagePlan::parse("10/s, 30s:10/s, 0s:50/s, 10s:50/s", true, Duration::ZERO).expect("parse");
        assert_eq!(held.value_at(s(29.0)), 10.0);
        assert_eq!(held.value_at(s(30.0)), 50.0, "a zero-length stage jumps");
        assert_eq!(held.describe(true), "10/s,30s:10/s,0s:50/s,10s:50/s");
        let closed = StagePlan::parse("30s:5,1m:50", false, Duration::ZERO).expect("closed");
        assert_eq!(closed.peak(), 50.0);
    }

    #[test]
    fn bad_stages_are_refused_with_the_reason() {
        let err = |t: &str, rate: bool| StagePlan::parse(t, rate, s(60.0)).expect_err(t).to_string();
        assert!(err("", true).contains("empty"));
        assert!(err("30s:ten/s", true).contains("not a rate"));
        assert!(err("30s:-5/s", true).contains("0 or more"));
        assert!(err("30x:5/s", true).contains("30x"));
        assert!(err("30s:5,10", false).contains("only the first may be a bare target"));
        assert!(err("30s:2.5", false).contains("whole number"));
        assert!(err("0s:5/s", true).contains("more than zero"));
        assert!(err("wobble:5/s", true).contains("unknown load shape"));
        assert!(err("spike:5/s", true).contains("LOW..HIGH"));
        assert!(err("ebb-and-flow:5/s..50/s", true).contains("PERIOD"));
        // One unit per plan, and shapes that go the way their names say.
        assert!(err("10s:10/s,10s:5", true).contains("no /s in a plan of rates"));
        assert!(err("10/s,10s:10/s,0s:0", true).contains("no /s"));
        assert!(err("spike:50/s..5/s", true).contains("peak must be above the base"));
        assert!(err("spike:5..5", false).contains("peak must be above the base"));
        assert!(err("ebb-and-flow:50/s..5/s@10s", true).contains("HIGH must be above LOW"));
        assert!(err("-5s:10/s", true).contains("must not be negative"));
    }

    #[test]
    fn shapes_span_the_run() {
        let d = s(100.0);
        let ramp = StagePlan::parse("ramp:50/s", true, d).expect("ramp");
        assert_eq!((ramp.value_at(s(0.0)), ramp.value_at(s(50.0)), ramp.value_at(d)), (0.0, 25.0, 50.0));
        let spike = StagePlan::parse("spike:10/s..100/s", true, d).expect("spike");
        assert_eq!((spike.value_at(s(39.0)), spike.value_at(s(45.0)), spike.value_at(s(61.0))), (10.0, 100.0, 10.0));
        let wave = StagePlan::parse("ebb-and-flow:10/s..50/s@40s", true, d).expect("ebb");
        assert!((wave.value_at(s(10.0)) - 50.0).abs() < 1e-9 && (wave.value_at(s(30.0)) - 10.0).abs() < 1e-9);
        assert_eq!(wave.duration(), d);
        // Mean 30/s, plus the extra rising half period of 2.5 periods: 20 x 40 / pi.
        let expected = 30.0 * 100.0 + 20.0 * 40.0 / std::f64::consts::PI;
        assert!((wave.integral(d) - expected).abs() < 10.0, "{} vs {expected}", wave.integral(d));
    }

    #[test]
    fn constant_arrivals_follow_the_rate_exactly() {
        let plan = StagePlan::parse("10s:10/s,10s:10/s,0s:0/s,10s:0/s", true, Duration::ZERO).expect("parse");
        assert_eq!(plan.integral(s(10.0)), 50.0);
        assert_eq!(plan.integral(s(20.0)), 150.0);
        let mut a = Arrivals::new(plan.clone(), false, 0.5, 1);
        let dues: Vec<Duration> = std::iter::from_fn(|| a.next_due()).collect();
        // 150 starts, none in the final 10 s at 0/s.
        assert_eq!(dues.len(), 150);
        assert!(dues.windows(2).all(|w| w[0] <= w[1]));
        assert!(dues.iter().all(|d| *d <= s(20.0)));
        // Starts per second follow the ramp: the 5th second has ~4.5.
        let in_second = |k: f64| dues.iter().filter(|d| d.as_secs_f64() >= k && d.as_secs_f64() < k + 1.0).count();
        assert!((4..=5).contains(&in_second(4.0)), "{}", in_second(4.0));
        assert_eq!(in_second(15.0), 10);
        assert_eq!(plan.time_of(1e9), None);
    }

    #[test]
    fn poisson_arrivals_have_the_plans_mean() {
        let plan = StagePlan::constant(200.0, s(50.0));
        let mut a = Arrivals::new(plan, true, 0.0, 42);
        let n = std::iter::from_fn(|| a.next_due()).count() as f64;
        assert!((n - 10_000.0).abs() < 300.0, "{n}");
    }
}
