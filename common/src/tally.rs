//! What an agent counts and measures, in the form both binaries share: the
//! [`Counts`] of an interval or a run, the latency [`Histograms`], and a
//! [`Tally`] of one scenario. Agents fill them; the coordinator adds them up.
//! The wire form is in [`crate::wire`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::histogram::{HistogramError, LatencyHistogram};

/// An open-loop start issued later than this after its intended time is late.
pub const LATE_AFTER_MS: u64 = 10;

/// Outcome counts of one agent, an interval, a scenario or the merged run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Orchestrations whose start call succeeded.
    pub launched: u64,
    pub completed: u64,
    pub failed_infrastructure: u64,
    pub failed_configuration: u64,
    pub failed_application: u64,
    pub failed_poison: u64,
    /// Start calls that returned an error (counted apart from `launched`).
    pub start_errors: u64,
    /// Launched but not terminal when the drain deadline passed.
    pub unfinished: u64,
    /// Activity executions, counted where they ran.
    pub activities: u64,
    /// Batched completion queries the generator made (its own database load).
    pub status_queries: u64,
    /// End-to-end samples clamped because the database's completion time fell
    /// outside [start call, observation] (clock skew between machines).
    pub latency_clamped: u64,
    /// Completion queries that failed (and were retried next tick).
    #[serde(default)]
    pub status_query_errors: u64,
    /// Open loop: starts issued more than [`LATE_AFTER_MS`] after their
    /// intended time (the schedule fell behind).
    #[serde(default)]
    pub late: u64,
    /// Open loop: starts not issued because the in-flight cap was reached.
    #[serde(default)]
    pub dropped: u64,
    /// Failed instances whose scenario expected the failure (by design); they
    /// are part of the failed counts above and do not fail the success gate.
    #[serde(default)]
    pub expected_failures: u64,
    /// Instances that ended otherwise than their scenario expects: completed
    /// where a failure was designed, or failed with another error.
    #[serde(default)]
    pub unexpected_outcomes: u64,
    /// Latency samples above the histograms' highest trackable value (1 h),
    /// recorded as that value.
    #[serde(default)]
    pub saturated: u64,
}

impl Counts {
    /// Orchestrations that reached `Failed`, all categories.
    pub fn failed(&self) -> u64 {
        self.failed_infrastructure + self.failed_configuration + self.failed_application + self.failed_poison
    }

    /// Failures nobody designed.
    pub fn unexpected_failures(&self) -> u64 {
        self.failed().saturating_sub(self.expected_failures)
    }

    /// Instances that ended as their scenario expects: completed, or failed
    /// by design (an unexpected outcome counts against it).
    pub fn as_expected(&self) -> u64 {
        (self.completed + self.expected_failures).saturating_sub(self.unexpected_outcomes)
    }

    /// Launched instances that did not end as their scenario expects: failed
    /// unexpectedly, unfinished, or completed where a failure was designed.
    pub fn not_as_expected(&self) -> u64 {
        self.launched.saturating_sub(self.as_expected())
    }

    /// Instances that ended as expected, as a percentage of launched (0 when
    /// nothing launched).
    pub fn success_pct(&self) -> f64 {
        if self.launched == 0 { 0.0 } else { self.as_expected() as f64 * 100.0 / self.launched as f64 }
    }

    /// Add another set of counts into this one.
    pub fn add(&mut self, o: &Counts) {
        self.launched += o.launched;
        self.completed += o.completed;
        self.failed_infrastructure += o.failed_infrastructure;
        self.failed_configuration += o.failed_configuration;
        self.failed_application += o.failed_application;
        self.failed_poison += o.failed_poison;
        self.start_errors += o.start_errors;
        self.unfinished += o.unfinished;
        self.activities += o.activities;
        self.status_queries += o.status_queries;
        self.latency_clamped += o.latency_clamped;
        self.status_query_errors += o.status_query_errors;
        self.late += o.late;
        self.dropped += o.dropped;
        self.expected_failures += o.expected_failures;
        self.unexpected_outcomes += o.unexpected_outcomes;
        self.saturated += o.saturated;
    }
}

/// The latency histograms an agent keeps per scenario (and the merge of them).
#[derive(Clone, Debug, Default)]
pub struct Histograms {
    /// Start call issued until the runtime recorded the terminal status.
    pub e2e: LatencyHistogram,
    /// Start call issued until the completion query saw the terminal status.
    pub observed: LatencyHistogram,
    /// The start call itself.
    pub start: LatencyHistogram,
    /// Open loop only: from the intended start time to the terminal status.
    pub intended: LatencyHistogram,
    /// From the terminal status until the agent learned of it: the delay
    /// completion tracking adds (not part of any latency above but `observed`).
    pub observation: LatencyHistogram,
    /// Open loop only: how late each start call was issued (actual minus
    /// intended start): the generator's own scheduling delay, apart from the
    /// system's latency.
    pub lateness: LatencyHistogram,
}

impl Histograms {
    /// Merge another set into this one (exact).
    pub fn merge(&mut self, o: &Histograms) -> Result<(), HistogramError> {
        self.e2e.merge(&o.e2e)?;
        self.observed.merge(&o.observed)?;
        self.start.merge(&o.start)?;
        self.intended.merge(&o.intended)?;
        self.observation.merge(&o.observation)?;
        self.lateness.merge(&o.lateness)
    }

    /// Forget every sample.
    pub fn reset(&mut self) {
        self.e2e.reset();
        self.observed.reset();
        self.start.reset();
        self.intended.reset();
        self.observation.reset();
        self.lateness.reset();
    }

    /// Samples clamped to the highest trackable value, over all of them.
    pub fn saturated(&self) -> u64 {
        self.e2e.saturated()
            + self.observed.saturated()
            + self.start.saturated()
            + self.intended.saturated()
            + self.observation.saturated()
            + self.lateness.saturated()
    }
}

/// One scenario's counts, latencies and facts over an interval or a run.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub counts: Counts,
    pub hist: Histograms,
    /// Scenario-specific counts from the driver (events raised, bytes...).
    pub facts: BTreeMap<String, u64>,
}

impl Tally {
    /// Add another tally into this one (histograms merged exactly).
    pub fn add(&mut self, o: &Tally) -> Result<(), HistogramError> {
        self.counts.add(&o.counts);
        self.hist.merge(&o.hist)?;
        for (k, v) in &o.facts {
            *self.facts.entry(k.clone()).or_default() += v;
        }
        Ok(())
    }

    /// Count `n` of the scenario fact `name`.
    pub fn fact(&mut self, name: &str, n: u64) {
        if n > 0 {
            *self.facts.entry(name.to_string()).or_default() += n;
        }
    }

    /// Forget everything (keeps the histograms' allocations).
    pub fn reset(&mut self) {
        self.counts = Counts::default();
        self.hist.reset();
        self.facts.clear();
    }
}

/// What an agent reports once a second: everything since its previous report.
#[derive(Clone, Debug, Default)]
pub struct Interval {
    pub seq: u64,
    /// End of the interval, since the common start.
    pub elapsed_ms: u64,
    /// Orchestrations in flight (or being started) at the end of the interval.
    pub in_flight: u64,
    /// Resident memory of the agent process (0 when unknown).
    pub rss_bytes: u64,
    /// CPU time the agent process used during the interval, milliseconds.
    pub cpu_ms: u64,
    /// Per scenario, by name.
    pub scenarios: BTreeMap<String, Tally>,
    /// Completion queries this interval, and how many failed.
    pub status_queries: u64,
    pub status_query_errors: u64,
    /// The agent's wall clock as it sent the interval (microseconds since
    /// the Unix epoch; 0 when unknown).
    pub unix_micros: i64,
    /// Provider errors met and retried so far in the run (cumulative),
    /// "operation/error_type".
    pub provider_errors: BTreeMap<String, u64>,
    /// The activity ledger's lines of the interval, and how many the agent
    /// could not keep.
    pub activity_runs: Vec<crate::ledger::ActivityRun>,
    pub activity_runs_dropped: u64,
}

impl Interval {
    /// The interval's counts over every scenario, with the agent-level ones.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for t in self.scenarios.values() {
            c.add(&t.counts);
        }
        c.status_queries += self.status_queries;
        c.status_query_errors += self.status_query_errors;
        c
    }
}

/// How an agent's run ended, besides its intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finish {
    /// From the start instant to the end of the drain.
    pub elapsed_ms: u64,
    /// Provider errors the runtimes met and retried, "operation/error_type".
    pub provider_errors: BTreeMap<String, u64>,
    /// Intervals sent before this.
    pub progress_messages: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_and_derive() {
        let mut a =
            Counts { launched: 10, completed: 7, failed_application: 2, failed_poison: 1, ..Default::default() };
        a.expected_failures = 2;
        let b = Counts { launched: 5, completed: 5, activities: 25, ..Default::default() };
        a.add(&b);
        assert_eq!((a.launched, a.completed, a.failed(), a.activities), (15, 12, 3, 25));
        assert_eq!((a.as_expected(), a.unexpected_failures()), (14, 1));
        assert!((a.success_pct() - 14.0 * 100.0 / 15.0).abs() < 1e-9);
        assert_eq!(Counts::default().success_pct(), 0.0);
        a.unexpected_outcomes = 1;
        assert_eq!(a.as_expected(), 13);
    }

    #[test]
    fn tallies_add_facts_and_samples() {
        let mut a = Tally::default();
        a.fact("events_raised", 3);
        a.fact("nothing", 0);
        a.hist.e2e.record_us(10);
        let mut b = a.clone();
        b.counts.launched = 2;
        a.add(&b).expect("add");
        assert_eq!(a.facts.get("events_raised"), Some(&6));
        assert!(!a.facts.contains_key("nothing"));
        assert_eq!((a.hist.e2e.count(), a.counts.launched), (2, 2));
    }
}
