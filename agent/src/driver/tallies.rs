//! What the driver counts between two progress messages, per scenario, and
//! the interval it ships once a second. Every sample goes into exactly one
//! interval: the coordinator's totals are the sum of the intervals.

use std::collections::BTreeMap;
use std::sync::Arc;

use loadgen_common::tally::{Counts, Interval, Tally};

use crate::scenario::ActivityCounters;

/// The current interval's tallies and the running totals the agent logs.
#[derive(Debug)]
pub struct Tallies {
    interval: BTreeMap<&'static str, Tally>,
    /// Over the whole run, for the agent's own log line.
    pub totals: Counts,
    status_queries: u64,
    status_query_errors: u64,
    counters: Arc<ActivityCounters>,
    /// Activity executions per scenario at the last sample.
    activities_seen: BTreeMap<&'static str, u64>,
    seq: u64,
    /// The process's CPU time at the end of the last interval.
    cpu_mark: std::time::Duration,
}

impl Tallies {
    pub fn new(counters: Arc<ActivityCounters>) -> Self {
        let activities_seen = counters.snapshot();
        // The ledger starts with the run, as the counts do.
        let _ = counters.ledger.take();
        Tallies {
            interval: BTreeMap::new(),
            totals: Counts::default(),
            status_queries: 0,
            status_query_errors: 0,
            counters,
            activities_seen,
            seq: 0,
            cpu_mark: loadgen_common::process::cpu_time(),
        }
    }

    /// The interval tally of `scenario`.
    pub fn of(&mut self, scenario: &'static str) -> &mut Tally {
        self.interval.entry(scenario).or_default()
    }

    /// Change one count of `scenario` by `n`, in the interval and the totals.
    pub fn count(&mut self, scenario: &'static str, n: u64, field: fn(&mut Counts) -> &mut u64) {
        *field(&mut self.of(scenario).counts) += n;
        *field(&mut self.totals) += n;
    }

    /// A completion query was made (and failed, when `failed`).
    pub fn status_query(&mut self, failed: bool) {
        if failed {
            self.status_query_errors += 1;
            self.totals.status_query_errors += 1;
        } else {
            self.status_queries += 1;
            self.totals.status_queries += 1;
        }
    }

    /// Fold the activity executions since the last sample into the interval.
    fn sample_activities(&mut self) {
        for (scenario, now) in self.counters.snapshot() {
            let before = self.activities_seen.insert(scenario, now).unwrap_or(0);
            let delta = now.saturating_sub(before);
            if delta > 0 {
                self.count(scenario, delta, |c| &mut c.activities);
            }
        }
    }

    /// Close the interval: everything since the previous one, then start afresh.
    pub fn take(&mut self, elapsed_ms: u64, in_flight: u64) -> Interval {
        self.sample_activities();
        self.seq += 1;
        let mut scenarios = BTreeMap::new();
        for (name, t) in &mut self.interval {
            let mut t = std::mem::take(t);
            t.counts.saturated = t.hist.saturated();
            self.totals.saturated += t.counts.saturated;
            scenarios.insert(name.to_string(), t);
        }
        self.interval.clear();
        let (activity_runs, activity_runs_dropped) = self.counters.ledger.take();
        let cpu = loadgen_common::process::cpu_time();
        let cpu_ms = u64::try_from(cpu.saturating_sub(self.cpu_mark).as_millis()).unwrap_or(u64::MAX);
        self.cpu_mark = cpu;
        let interval = Interval {
            seq: self.seq,
            elapsed_ms,
            in_flight,
            rss_bytes: loadgen_common::process::rss_bytes(),
            cpu_ms,
            scenarios,
            status_queries: self.status_queries,
            status_query_errors: self.status_query_errors,
            unix_micros: chrono::Utc::now().timestamp_micros(),
            // The driver adds the run's provider errors.
            provider_errors: Default::default(),
            activity_runs,
            activity_runs_dropped,
        };
        self.status_queries = 0;
        self.status_query_errors = 0;
        interval
    }

    /// Intervals taken so far.
    pub fn intervals(&self) -> u64 {
        self.seq
    }

    /// Activity executions so far over every scenario (for late ones after the result).
    pub fn activities_now(&self) -> u64 {
        self.counters.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_count_lands_in_one_interval() {
        let mut t = Tallies::new(Arc::new(ActivityCounters::new()));
        t.count("fanout", 2, |c| &mut c.launched);
        t.of("fanout").hist.e2e.record_us(100);
        t.status_query(false);
        let first = t.take(1000, 2);
        assert_eq!(first.seq, 1);
        assert_eq!(first.scenarios["fanout"].counts.launched, 2);
        assert_eq!((first.status_queries, first.scenarios["fanout"].hist.e2e.count()), (1, 1));
        let second = t.take(2000, 0);
        assert!(second.scenarios.is_empty() && second.status_queries == 0);
        assert_eq!((t.totals.launched, t.intervals()), (2, 2));
    }
}
