//! The run as it streams in: every agent's intervals folded as they arrive
//! (each decoded once, at the wire border), into per-agent and per-scenario
//! totals, the per-second series (per agent, and merged exactly across
//! agents second by second) and what the live view shows ([`Frame`]).
//!
//! Memory stays bounded by the run's length, not its sample count: a merged
//! second's histogram is kept only until every agent has moved past it.

use std::collections::BTreeMap;
use std::time::Instant;

use loadgen_common::histogram::{HistogramError, LatencyHistogram};
use loadgen_common::tally::{Counts, Interval, Tally};

use crate::model::live::{Frame, FrameRow};
use crate::model::run::headline_histogram;
use crate::model::{DbSample, Failures, MemorySample, TimePoint};

/// One agent's stream so far.
#[derive(Debug, Default)]
pub struct AgentStream {
    /// Totals per scenario (sums of the intervals).
    pub scenarios: BTreeMap<String, Tally>,
    /// Agent-level counts (completion queries).
    pub status_queries: u64,
    pub status_query_errors: u64,
    pub in_flight: u64,
    pub memory: Vec<MemorySample>,
    /// CPU time the agent process reported using, milliseconds.
    pub cpu_ms: u64,
    /// Intervals received.
    pub intervals: u64,
    /// Provider errors retried so far (the latest cumulative report).
    pub provider_errors: BTreeMap<String, u64>,
    /// The agent's clock offset from this process's over the run (least and
    /// most, ms), each against the interval's arrival.
    pub clock: Option<(f64, f64)>,
    /// The per-second series, and the last point still open to a short
    /// final interval (with its histogram).
    pub series: Vec<TimePoint>,
    pending: Option<(TimePoint, f64, LatencyHistogram)>,
    /// End of the last interval, seconds since the start.
    last_t: f64,
    pub alive: bool,
    /// Interval histograms for the .hlog files (kept only when asked for).
    pub hlog: Vec<(f64, LatencyHistogram)>,
}

impl AgentStream {
    /// Counts over every scenario, with the agent-level ones.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for t in self.scenarios.values() {
            c.add(&t.counts);
        }
        c.status_queries += self.status_queries;
        c.status_query_errors += self.status_query_errors;
        c
    }

    /// The last whole point (or the one still open).
    pub fn last_point(&self) -> Option<&TimePoint> {
        self.pending.as_ref().map(|(p, _, _)| p).or(self.series.last())
    }
}

/// One merged second, until every agent has moved past it.
#[derive(Debug)]
struct Second {
    t_s: f64,
    len_s: f64,
    counts: Counts,
    in_flight: u64,
    hist: LatencyHistogram,
}

/// Running view of the whole cluster.
#[derive(Debug)]
pub struct Live {
    started: Instant,
    pub agents: Vec<AgentStream>,
    /// Headline latency of the whole run so far (the line's p99).
    headline: LatencyHistogram,
    /// Completion-observation delay of the whole run so far.
    observation: LatencyHistogram,
    open_seconds: BTreeMap<u64, Second>,
    /// Merged per-second points, finished.
    pub merged: Vec<TimePoint>,
    /// Merged per-second histograms for the .hlog files (when asked for).
    pub merged_hlog: Vec<(f64, LatencyHistogram)>,
    keep_hlog: bool,
    /// Headline histograms of the merged seconds closed since the last
    /// [`Live::take_closed`] (kept only when asked for: a live judge).
    closed: Option<Vec<LatencyHistogram>>,
    /// The activity ledger the agents reported so far.
    pub ledger: loadgen_common::ledger::Ledger,
}

/// A point from an interval's counts and histogram.
fn point(t_s: f64, len_s: f64, c: &Counts, in_flight: u64, h: &LatencyHistogram) -> TimePoint {
    TimePoint {
        t_s,
        launched: c.launched,
        completed: c.completed,
        failed: c.failed() + c.start_errors,
        late: c.late,
        dropped: c.dropped,
        in_flight,
        orch_per_sec: if len_s > 0.0 { c.completed as f64 / len_s } else { 0.0 },
        p50_ms: h.quantile_us(0.5) as f64 / 1000.0,
        p99_ms: h.quantile_us(0.99) as f64 / 1000.0,
        max_ms: h.max_us() as f64 / 1000.0,
        offered: None,
        failures: Failures::of(c),
    }
}

/// Counts of a point back (for folding a short interval into it).
fn point_counts(p: &TimePoint) -> Counts {
    Counts { launched: p.launched, completed: p.completed, late: p.late, dropped: p.dropped, ..Default::default() }
}

impl Live {
    /// A view of `agents` agents, timed from `started` (the common start
    /// instant); `keep_hlog` keeps interval histograms for .hlog files.
    pub fn new(agents: usize, started: Instant, keep_hlog: bool) -> Self {
        Live {
            started,
            agents: (0..agents).map(|_| AgentStream { alive: true, ..Default::default() }).collect(),
            headline: LatencyHistogram::new(),
            observation: LatencyHistogram::new(),
            open_seconds: BTreeMap::new(),
            merged: Vec::new(),
            merged_hlog: Vec::new(),
            keep_hlog,
            closed: None,
            ledger: Default::default(),
        }
    }

    /// Keep each closed second's histogram for [`Live::take_closed`].
    pub fn collect_closed(&mut self) {
        self.closed.get_or_insert_with(Vec::new);
    }

    /// The histograms of the seconds closed since the last call.
    pub fn take_closed(&mut self) -> Vec<LatencyHistogram> {
        self.closed.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Counts over every agent so far.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for a in &self.agents {
            total.add(&a.counts());
        }
        total
    }

    /// Fold one interval of agent `i`.
    pub fn fold(&mut self, i: usize, mut iv: Interval) -> Result<(), HistogramError> {
        let t_s = iv.elapsed_ms as f64 / 1000.0;
        self.ledger.add_reported(i as u32, std::mem::take(&mut iv.activity_runs), iv.activity_runs_dropped);
        let counts = iv.counts();
        // The interval's headline histogram over its scenarios.
        let mut h = LatencyHistogram::new();
        for t in iv.scenarios.values() {
            h.merge(headline_histogram(&t.hist))?;
            self.observation.merge(&t.hist.observation)?;
        }
        self.headline.merge(&h)?;
        let keep_hlog = self.keep_hlog;
        let Some(a) = self.agents.get_mut(i) else { return Ok(()) };
        for (name, t) in iv.scenarios {
            a.scenarios.entry(name).or_default().add(&t)?;
        }
        a.status_queries += iv.status_queries;
        a.status_query_errors += iv.status_query_errors;
        a.in_flight = iv.in_flight;
        a.cpu_ms += iv.cpu_ms;
        a.intervals += 1;
        if !iv.provider_errors.is_empty() {
            a.provider_errors = iv.provider_errors;
        }
        if iv.unix_micros != 0 {
            let offset_ms = (iv.unix_micros - chrono::Utc::now().timestamp_micros()) as f64 / 1000.0;
            let (lo, hi) = a.clock.unwrap_or((offset_ms, offset_ms));
            a.clock = Some((lo.min(offset_ms), hi.max(offset_ms)));
        }
        if iv.rss_bytes > 0 {
            a.memory.push(MemorySample { t_s, rss_mb: iv.rss_bytes as f64 / (1024.0 * 1024.0) });
        }
        let len = t_s - a.last_t;
        a.last_t = t_s;
        // A final interval of under half a second folds into the one before.
        match a.pending.as_mut() {
            Some((p, plen, ph)) if len < 0.5 => {
                ph.merge(&h)?;
                let (before, mut failures) = (p.failed, p.failures.clone());
                let mut c = point_counts(p);
                c.add(&counts);
                *plen += len;
                *p = point(t_s, *plen, &c, iv.in_flight, ph);
                p.failed = before + counts.failed() + counts.start_errors;
                failures.add(&Failures::of(&counts));
                p.failures = failures;
            }
            _ => {
                if let Some((p, _, ph)) = a.pending.take() {
                    if keep_hlog {
                        a.hlog.push((p.t_s, ph));
                    }
                    a.series.push(p);
                }
                a.pending = Some((point(t_s, len, &counts, iv.in_flight, &h), len, h.clone()));
            }
        }
        let s = self.open_seconds.entry(t_s.round() as u64).or_insert_with(|| Second {
            t_s,
            len_s: 0.0,
            counts: Counts::default(),
            in_flight: 0,
            hist: LatencyHistogram::new(),
        });
        s.t_s = s.t_s.max(t_s);
        s.len_s = s.len_s.max(len);
        s.counts.add(&counts);
        s.in_flight += iv.in_flight;
        s.hist.merge(&h)?;
        self.close_seconds(false);
        Ok(())
    }

    /// Finish the merged seconds every live agent has moved past (all of
    /// them at the end).
    fn close_seconds(&mut self, all: bool) {
        let horizon = self.agents.iter().filter(|a| a.alive).map(|a| a.last_t.round() as u64).min().unwrap_or(u64::MAX);
        while let Some((&sec, _)) = self.open_seconds.first_key_value() {
            if !all && sec >= horizon {
                break;
            }
            if let Some((_, s)) = self.open_seconds.pop_first() {
                if let Some(closed) = &mut self.closed {
                    closed.push(s.hist.clone());
                }
                self.merged.push(point(s.t_s, s.len_s, &s.counts, s.in_flight, &s.hist));
                if self.keep_hlog {
                    self.merged_hlog.push((s.t_s, s.hist));
                }
            }
        }
    }

    /// Mark agent `i` as gone.
    pub fn lost(&mut self, i: usize) {
        if let Some(a) = self.agents.get_mut(i) {
            a.alive = false;
        }
        self.close_seconds(false);
    }

    /// Close every open point: the series are complete.
    pub fn finish(&mut self) {
        for a in &mut self.agents {
            if let Some((p, _, h)) = a.pending.take() {
                if self.keep_hlog {
                    a.hlog.push((p.t_s, h));
                }
                a.series.push(p);
            }
        }
        self.close_seconds(true);
    }

    /// What the live view shows now.
    pub fn frame<'a>(&'a self, db: Option<&'a DbSample>) -> Frame<'a> {
        let mut total = Counts::default();
        let mut scenarios: BTreeMap<&str, Counts> = BTreeMap::new();
        let mut provider_errors: BTreeMap<&str, u64> = BTreeMap::new();
        for a in &self.agents {
            for (name, t) in &a.scenarios {
                scenarios.entry(name.as_str()).or_default().add(&t.counts);
            }
            for (k, n) in &a.provider_errors {
                *provider_errors.entry(k.as_str()).or_default() += n;
            }
        }
        let rows = self
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let c = a.counts();
                total.add(&c);
                FrameRow { index: i, alive: a.alive, counts: c, last: a.last_point().cloned(), in_flight: a.in_flight }
            })
            .collect();
        Frame {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            rows,
            total,
            in_flight: self.agents.iter().map(|a| a.in_flight).sum(),
            p99_us: self.headline.quantile_us(0.99),
            headline: &self.headline,
            observation: &self.observation,
            scenarios,
            provider_errors,
            merged_last: self.merged.last().cloned(),
            db,
            offered: None,
            offered_now: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(elapsed_ms: u64, completed: u64, latency_us: u64, in_flight: u64) -> Interval {
        let mut t =
            Tally { counts: Counts { launched: completed, completed, ..Default::default() }, ..Default::default() };
        for _ in 0..completed {
            t.hist.e2e.record_us(latency_us);
        }
        Interval {
            elapsed_ms,
            in_flight,
            rss_bytes: 64 << 20,
            scenarios: BTreeMap::from([("fanout".to_string(), t)]),
            status_queries: 3,
            ..Default::default()
        }
    }

    #[test]
    fn intervals_fold_into_totals_series_and_exact_merged_seconds() {
        let mut live = Live::new(2, Instant::now(), true);
        live.fold(0, interval(1000, 2, 100_000, 3)).expect("fold");
        live.fold(1, interval(1000, 1, 300_000, 1)).expect("fold");
        live.fold(0, interval(2000, 1, 200_000, 0)).expect("fold");
        // A final interval of 40 ms folds into the second before it.
        live.fold(0, interval(2040, 1, 200_000, 0)).expect("fold");
        live.fold(1, interval(2000, 0, 0, 0)).expect("fold");
        let f = live.frame(None);
        assert_eq!((f.total.completed, f.total.status_queries, f.rows.len()), (5, 15, 2));
        assert_eq!(f.p99_us / 1000, 300, "{}", f.p99_us);
        live.lost(1);
        live.finish();
        let a0 = &live.agents[0];
        assert_eq!(a0.series.len(), 2, "{:?}", a0.series);
        assert_eq!(a0.series[1].completed, 2);
        assert!((a0.series[1].orch_per_sec - 2.0 / 1.04).abs() < 1e-9);
        assert_eq!(a0.memory[0], MemorySample { t_s: 1.0, rss_mb: 64.0 });
        assert_eq!(live.merged.len(), 2);
        // Second 1 merges both agents exactly: 2 x 100 ms and 1 x 300 ms.
        assert_eq!((live.merged[0].completed, live.merged[0].in_flight), (3, 4));
        assert!((live.merged[0].p99_ms - 300.0).abs() < 1.0, "{:?}", live.merged[0]);
        assert_eq!(live.merged_hlog.len(), 2);
        assert_eq!(live.merged_hlog[0].1.count(), 3);
        assert!(!live.agents[1].alive);
    }
}
