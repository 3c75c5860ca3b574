//! `--abort-on-fail`: the gates that can already be lost while the run
//! goes, judged once a second, so a doomed run stops in seconds instead of
//! running to its end. A gate is lost when nothing later can win it back:
//! an unexpected failure beyond `max_failed` (or any infrastructure,
//! configuration or poison failure, or start error), the p99 over the last
//! [`WINDOW_S`] seconds above the p99 gate, or a lost agent.

use std::collections::VecDeque;

use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::tally::Counts;
use loadgen_common::units::format_latency_us as fmt_ms;

use crate::model::Aborted;
use crate::plan::ProfilePlan;

/// The p99 gate is judged over this many merged seconds.
pub const WINDOW_S: usize = 10;
/// ... and only once the window holds this many samples (a handful of slow
/// first orchestrations is no verdict).
pub const WINDOW_MIN_SAMPLES: u64 = 20;

/// The live judge of one run.
#[derive(Debug)]
pub struct Judge {
    max_failed: u64,
    p99_ms: Option<f64>,
    window: VecDeque<LatencyHistogram>,
    /// The verdict, once a gate is lost (it stays).
    pub lost: Option<Aborted>,
}

impl Judge {
    /// A judge for `profile`, when it asks for one.
    pub fn of(profile: &ProfilePlan) -> Option<Judge> {
        profile.gates.abort_on_fail.then(|| Judge {
            max_failed: profile.gates.max_failed.unwrap_or(0),
            p99_ms: profile.gates.p99_ms,
            window: VecDeque::with_capacity(WINDOW_S + 1),
            lost: None,
        })
    }

    /// A merged second was closed with this headline histogram.
    pub fn second(&mut self, h: &LatencyHistogram) {
        self.window.push_back(h.clone());
        while self.window.len() > WINDOW_S {
            self.window.pop_front();
        }
    }

    /// Judge the totals so far at `at_s`; the verdict when a gate was just lost.
    pub fn judge(&mut self, c: &Counts, at_s: f64) -> Option<&Aborted> {
        if self.lost.is_some() {
            return None;
        }
        let lost = |gate: &str, detail: String| Aborted { gate: gate.into(), at_s, detail };
        let unexpected = c.unexpected_failures() + c.unexpected_outcomes;
        let verdict = if c.failed_infrastructure > 0 {
            Some(lost("infrastructure failures", format!("{} infrastructure failure(s)", c.failed_infrastructure)))
        } else if c.failed_configuration > 0 {
            Some(lost("configuration failures", format!("{} configuration failure(s)", c.failed_configuration)))
        } else if c.failed_poison > 0 {
            Some(lost("poison messages", format!("{} poison message(s)", c.failed_poison)))
        } else if c.start_errors > 0 {
            Some(lost("start errors", format!("{} start call(s) failed", c.start_errors)))
        } else if unexpected > self.max_failed {
            let gate = if self.max_failed == 0 { "success rate" } else { "failed or unfinished" };
            Some(lost(
                gate,
                format!("{unexpected} instance(s) ended otherwise than expected (limit {})", self.max_failed),
            ))
        } else {
            self.window_p99().and_then(|(p99, n)| {
                self.p99_ms.filter(|&limit| p99 as f64 / 1000.0 > limit).map(|limit| {
                    lost(
                        "p99 latency",
                        format!("p99 over the last {WINDOW_S} s was {} ({n} samples), above {limit}ms", fmt_ms(p99)),
                    )
                })
            })
        };
        self.lost = verdict;
        self.lost.as_ref()
    }

    /// An agent was lost at `at_s`.
    pub fn agent_lost(&mut self, index: usize, reason: &str, at_s: f64) -> Option<&Aborted> {
        if self.lost.is_some() {
            return None;
        }
        self.lost = Some(Aborted { gate: "agents".into(), at_s, detail: format!("agent {index} was lost: {reason}") });
        self.lost.as_ref()
    }

    /// The window's p99 and sample count, once it holds enough samples.
    fn window_p99(&self) -> Option<(u64, u64)> {
        let mut h = LatencyHistogram::new();
        for s in &self.window {
            h.merge(s).ok()?;
        }
        (h.count() >= WINDOW_MIN_SAMPLES).then(|| (h.quantile_us(0.99), h.count()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Profile;

    fn plan(p: Profile) -> ProfilePlan {
        ProfilePlan::resolve(p).expect("resolves")
    }

    fn judge(max_failed: Option<u64>, p99_ms: Option<f64>) -> Judge {
        Judge::of(&plan(Profile { abort_on_fail: true, max_failed, p99_ms, ..Default::default() })).expect("asked for")
    }

    #[test]
    fn only_a_profile_that_asks_gets_a_judge() {
        assert!(Judge::of(&plan(Profile::default())).is_none());
    }

    #[test]
    fn failures_beyond_the_limit_lose_the_gate_once() {
        let mut j = judge(Some(2), None);
        let mut c = Counts { launched: 10, failed_application: 2, ..Default::default() };
        assert!(j.judge(&c, 1.0).is_none(), "two of two allowed");
        c.failed_application = 3;
        let v = j.judge(&c, 2.0).expect("lost").clone();
        assert_eq!((v.gate.as_str(), v.at_s), ("failed or unfinished", 2.0));
        assert!(v.detail.contains("3 instance(s)"), "{v:?}");
        assert!(j.judge(&c, 3.0).is_none(), "said once");
        // Failures by design are not lost gates; an infrastructure failure is.
        let mut j = judge(None, None);
        let by_design = Counts { failed_application: 4, expected_failures: 4, ..Default::default() };
        assert!(j.judge(&by_design, 1.0).is_none());
        let infra = Counts { failed_infrastructure: 1, ..Default::default() };
        assert_eq!(j.judge(&infra, 2.0).expect("lost").gate, "infrastructure failures");
    }

    #[test]
    fn the_p99_gate_is_judged_over_a_full_enough_window() {
        let mut j = judge(None, Some(100.0));
        let mut slow = LatencyHistogram::new();
        for _ in 0..10 {
            slow.record_us(500_000);
        }
        j.second(&slow);
        assert!(j.judge(&Counts::default(), 1.0).is_none(), "10 samples are no verdict");
        j.second(&slow);
        let v = j.judge(&Counts::default(), 2.0).expect("lost");
        assert_eq!(v.gate, "p99 latency");
        assert!(v.detail.contains("above 100ms"), "{v:?}");
        // Fast seconds push the slow ones out of the window.
        let mut j = judge(None, Some(100.0));
        let mut fast = LatencyHistogram::new();
        for _ in 0..50 {
            fast.record_us(5_000);
        }
        j.second(&slow);
        for _ in 0..WINDOW_S {
            j.second(&fast);
        }
        assert!(j.judge(&Counts::default(), 12.0).is_none());
    }
}
