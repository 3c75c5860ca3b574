//! Live progress: folds the agents' once-a-second interval messages into
//! running totals (histogram deltas merged exactly) and renders one line;
//! keeps every interval (histograms encoded, a few hundred bytes each) for
//! the per-second time series and the HdrHistogram interval logs.

use std::time::Instant;

use loadgen_common::histogram::{HistogramError, LatencyHistogram};
use loadgen_common::proto::Progress;
use loadgen_common::result::{Counts, DbSample, Histograms, MemorySample, TimePoint, Timeline};

/// One row of the live table.
fn row(name: &str, c: &Counts, rate: f64, h: &LatencyHistogram, in_flight: u64) -> String {
    let ms = |us: u64| if h.count() == 0 { "-".to_string() } else { crate::report::fmt_ms(us) };
    format!(
        "         {:<10} {:>9} {:>6} {:>8.1} {:>9} {:>9} {:>9} {:>6} {:>7}\n",
        name,
        c.completed,
        c.failed() + c.start_errors,
        rate,
        ms(h.quantile_us(0.5)),
        ms(h.quantile_us(0.99)),
        ms(h.max_us()),
        in_flight,
        c.late + c.dropped
    )
}

/// The per-second series of a run and the interval histograms behind them
/// (for the HdrHistogram interval logs).
#[derive(Debug, Default)]
pub struct Series {
    pub timeline: Timeline,
    /// (end of the second, merged histogram of that second)
    pub merged: Vec<(f64, LatencyHistogram)>,
    /// Per agent: (end of the interval, its histogram)
    pub agents: Vec<Vec<(f64, LatencyHistogram)>>,
}

/// One progress interval of one agent, as received.
#[derive(Clone, Debug)]
pub struct Interval {
    /// End of the interval, seconds since the common start.
    pub t_s: f64,
    pub counts: Counts,
    pub in_flight: u64,
    /// The interval's headline histogram (from the intended start in open
    /// loop, from the start call in closed loop), V2-encoded.
    pub headline: Vec<u8>,
}

/// Running view of the whole cluster.
#[derive(Debug)]
pub struct Live {
    started: Instant,
    alive: Vec<bool>,
    per_agent: Vec<Counts>,
    in_flight: Vec<u64>,
    e2e: LatencyHistogram,
    /// Histogram samples received through progress messages, per agent (to
    /// cross-check against the final histograms).
    samples: Vec<u64>,
    /// Each agent's memory, one sample per progress message.
    memory: Vec<Vec<MemorySample>>,
    /// Each agent's histograms, summed from its interval deltas (what is
    /// known of an agent that is lost before its result).
    hist: Vec<Histograms>,
    /// Every interval of every agent, in arrival order.
    intervals: Vec<Vec<Interval>>,
}

impl Live {
    /// A view of `agents` agents, timed from `started` (the common start instant).
    pub fn new(agents: usize, started: Instant) -> Self {
        Live {
            started,
            alive: vec![true; agents],
            per_agent: vec![Counts::default(); agents],
            in_flight: vec![0; agents],
            e2e: LatencyHistogram::new(),
            samples: vec![0; agents],
            memory: vec![Vec::new(); agents],
            hist: vec![Histograms::default(); agents],
            intervals: vec![Vec::new(); agents],
        }
    }

    /// Fold one progress message of agent `i`.
    pub fn progress(&mut self, i: usize, p: &Progress) -> Result<(), HistogramError> {
        let delta = LatencyHistogram::decode(&p.e2e_latency)?;
        let intended = LatencyHistogram::decode(&p.intended_latency)?;
        // Open-loop agents send the intended-start histogram (possibly empty);
        // closed-loop ones send no bytes at all.
        let open_loop = !p.intended_latency.is_empty();
        self.e2e.merge(if open_loop { &intended } else { &delta })?;
        if let Some(h) = self.hist.get_mut(i) {
            h.merge(&Histograms {
                e2e: delta.clone(),
                observed: LatencyHistogram::decode(&p.observed_latency)?,
                start: LatencyHistogram::decode(&p.start_latency)?,
                intended,
            })?;
        }
        let counts: Counts = p.interval.as_ref().map(Counts::from).unwrap_or_default();
        if let Some(c) = self.per_agent.get_mut(i) {
            c.add(&counts);
        }
        if let Some(list) = self.intervals.get_mut(i) {
            list.push(Interval {
                t_s: p.elapsed_ms as f64 / 1000.0,
                counts,
                in_flight: p.in_flight,
                headline: if open_loop { p.intended_latency.clone() } else { p.e2e_latency.clone() },
            });
        }
        if let Some(s) = self.samples.get_mut(i) {
            *s += delta.count();
        }
        if let Some(f) = self.in_flight.get_mut(i) {
            *f = p.in_flight;
        }
        if let Some(m) = self.memory.get_mut(i)
            && p.rss_bytes > 0
        {
            m.push(MemorySample { t_s: p.elapsed_ms as f64 / 1000.0, rss_mb: p.rss_bytes as f64 / (1024.0 * 1024.0) });
        }
        Ok(())
    }

    /// Mark agent `i` as gone.
    pub fn lost(&mut self, i: usize) {
        if let Some(a) = self.alive.get_mut(i) {
            *a = false;
        }
    }

    /// Counts agent `i` reported through its progress messages.
    pub fn streamed_counts(&self, i: usize) -> Option<&Counts> {
        self.per_agent.get(i)
    }

    /// Histograms agent `i` streamed so far.
    pub fn streamed_histograms(&self, i: usize) -> Histograms {
        self.hist.get(i).cloned().unwrap_or_default()
    }

    /// Last reported in-flight count of agent `i`.
    pub fn in_flight(&self, i: usize) -> u64 {
        self.in_flight.get(i).copied().unwrap_or(0)
    }

    /// Memory samples of agent `i`, in time order.
    pub fn memory(&self, i: usize) -> Vec<MemorySample> {
        self.memory.get(i).cloned().unwrap_or_default()
    }

    /// Every interval agent `i` reported, in order.
    pub fn intervals(&self, i: usize) -> &[Interval] {
        self.intervals.get(i).map_or(&[], Vec::as_slice)
    }

    /// Number of agents followed.
    pub fn agents(&self) -> usize {
        self.intervals.len()
    }

    /// The per-second series, per agent and merged, and the interval
    /// histograms behind them. Agents' intervals are aligned by their whole
    /// second since the common start (they all start at the same instant and
    /// report every second); an interval shorter than half a second (the
    /// last one, sent when an agent finishes) is folded into the one before.
    /// The merged latency of a second is the exact merge of the agents'
    /// interval histograms.
    pub fn timeline(&self) -> Result<Series, HistogramError> {
        let point = |t_s: f64, c: &Counts, in_flight: u64, h: &LatencyHistogram, len_s: f64| TimePoint {
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
        };
        let mut out = Series::default();
        let mut by_second: std::collections::BTreeMap<u64, (f64, f64, Counts, u64, LatencyHistogram)> =
            Default::default();
        for list in &self.intervals {
            // (end, length, counts, in flight at the end, histogram)
            let mut folded: Vec<(f64, f64, Counts, u64, LatencyHistogram)> = Vec::with_capacity(list.len());
            let mut prev = 0.0;
            for iv in list {
                let h = LatencyHistogram::decode(&iv.headline)?;
                let len = iv.t_s - prev;
                prev = iv.t_s;
                match folded.last_mut() {
                    Some(last) if len < 0.5 => {
                        last.0 = iv.t_s;
                        last.1 += len;
                        last.2.add(&iv.counts);
                        last.3 = iv.in_flight;
                        last.4.merge(&h)?;
                    }
                    _ => folded.push((iv.t_s, len, iv.counts.clone(), iv.in_flight, h)),
                }
            }
            let mut series = Vec::with_capacity(folded.len());
            let mut hists = Vec::with_capacity(folded.len());
            for (t_s, len, c, in_flight, h) in folded {
                series.push(point(t_s, &c, in_flight, &h, len));
                let slot = by_second
                    .entry(t_s.round() as u64)
                    .or_insert_with(|| (t_s, 0.0, Counts::default(), 0, LatencyHistogram::new()));
                slot.0 = slot.0.max(t_s);
                slot.1 = slot.1.max(len);
                slot.2.add(&c);
                slot.3 += in_flight;
                slot.4.merge(&h)?;
                hists.push((t_s, h));
            }
            out.timeline.agents.push(series);
            out.agents.push(hists);
        }
        for (_, (t_s, len, c, in_flight, h)) in by_second {
            out.timeline.merged.push(point(t_s, &c, in_flight, &h, len));
            out.merged.push((t_s, h));
        }
        Ok(out)
    }

    /// Latency samples agent `i` reported through its progress messages.
    pub fn streamed_samples(&self, i: usize) -> u64 {
        self.samples.get(i).copied().unwrap_or(0)
    }

    /// The live view: the plain line, or (on a terminal) a compact table per
    /// agent and merged with the database's latest sample.
    pub fn render(&self, db: Option<&DbSample>, table: bool) -> String {
        if !table {
            let mut line = self.line();
            if let Some(d) = db {
                line.push_str(&format!(
                    "  db {:.0} commits/s{}",
                    d.commits_per_sec,
                    if d.deadlocks > 0 { format!(" {} deadlock(s)", d.deadlocks) } else { String::new() }
                ));
            }
            return line;
        }
        self.table(db)
    }

    /// The compact live table: one row per agent and the merged row (the last
    /// second's throughput and latency, totals so far), then the database.
    pub fn table(&self, db: Option<&DbSample>) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut out = format!(
            "[{elapsed:>5.1}s] {:<10} {:>9} {:>6} {:>8} {:>9} {:>9} {:>9} {:>6} {:>7}\n",
            "agent", "completed", "failed", "orch/s", "p50", "p99", "max", "flight", "late+dr"
        );
        let mut last_merged = LatencyHistogram::new();
        let mut total = Counts::default();
        let mut rate_sum = 0.0;
        for (i, list) in self.intervals.iter().enumerate() {
            let c = self.per_agent.get(i).cloned().unwrap_or_default();
            total.add(&c);
            // The last whole interval (the final one, sent when an agent
            // finishes, can be a few milliseconds long).
            let ends: Vec<f64> = std::iter::once(0.0).chain(list.iter().map(|iv| iv.t_s)).collect();
            let whole = (0..list.len()).rev().find(|&k| ends[k + 1] - ends[k] >= 0.5);
            let last = whole.map(|k| &list[k]);
            let h = last.and_then(|iv| LatencyHistogram::decode(&iv.headline).ok()).unwrap_or_default();
            let _ = last_merged.merge(&h);
            let len = whole.map_or(0.0, |k| ends[k + 1] - ends[k]);
            let done = last.map_or(0, |iv| iv.counts.completed);
            let rate = if len > 0.0 { done as f64 / len } else { 0.0 };
            rate_sum += rate;
            let name = if self.alive.get(i).copied().unwrap_or(false) { format!("{i}") } else { format!("{i} LOST") };
            out.push_str(&row(&name, &c, rate, &h, self.in_flight(i)));
        }
        out.push_str(&row("merged", &total, rate_sum, &last_merged, self.in_flight.iter().sum()));
        match db {
            Some(d) => out.push_str(&format!(
                "         db: {:.0} commits/s, {:.1} rollbacks/s, {} deadlock(s), {} lock wait(s) ({} advisory), {} connection(s), queues {}/{}/{}",
                d.commits_per_sec,
                d.rollbacks_per_sec,
                d.deadlocks,
                d.lock_waits,
                d.advisory_lock_waits,
                d.connections.values().sum::<u64>(),
                d.orchestrator_queue,
                d.worker_queue,
                d.timer_queue
            )),
            None => out.push_str("         db: no sample yet"),
        }
        out
    }

    /// The one-line status: elapsed, completed, orch/s, p99 so far, in flight, agents alive.
    pub fn line(&self) -> String {
        let mut total = Counts::default();
        for c in &self.per_agent {
            total.add(c);
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { total.completed as f64 / elapsed } else { 0.0 };
        let failed = total.failed() + total.start_errors;
        format!(
            "[{:>5.1}s] completed {:>6}  failed {:>3}  {:>7.1} orch/s  p99 {:>8}  in flight {:>4}  agents {}/{}",
            elapsed,
            total.completed,
            failed,
            rate,
            crate::report::fmt_ms(self.e2e.quantile_us(0.99)),
            self.in_flight.iter().sum::<u64>(),
            self.alive.iter().filter(|a| **a).count(),
            self.alive.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_common::proto;

    #[test]
    fn folds_intervals_and_renders_a_line() {
        let mut live = Live::new(2, Instant::now());
        let mut h = LatencyHistogram::new();
        h.record_us(250_000);
        let p = Progress {
            seq: 1,
            elapsed_ms: 1000,
            interval: Some(proto::Counts { launched: 3, completed: 1, ..Default::default() }),
            in_flight: 2,
            e2e_latency: h.encode(),
            start_latency: Vec::new(),
            observed_latency: Vec::new(),
            rss_bytes: 64 << 20,
            intended_latency: Vec::new(),
        };
        live.progress(0, &p).expect("fold");
        live.progress(1, &p).expect("fold");
        live.lost(1);
        assert_eq!(live.streamed_counts(0).map(|c| c.completed), Some(1));
        assert_eq!(live.streamed_samples(1), 1);
        assert_eq!(live.memory(0), vec![MemorySample { t_s: 1.0, rss_mb: 64.0 }]);
        let line = live.line();
        assert!(line.contains("completed      2"), "{line}");
        assert!(line.contains("in flight    4"), "{line}");
        assert!(line.contains("agents 1/2"), "{line}");
        assert!(line.contains("p99  250."), "{line}");
        // Not a terminal: one plain line, with the database's commits when sampled.
        let db = DbSample { commits_per_sec: 512.0, deadlocks: 2, lock_waits: 3, ..Default::default() };
        let plain = live.render(Some(&db), false);
        assert_eq!(plain.lines().count(), 1, "{plain}");
        assert!(plain.ends_with("db 512 commits/s 2 deadlock(s)"), "{plain}");
        // A terminal: a row per agent, the merged row and the database line.
        let table = live.render(Some(&db), true);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(rows.len(), 5, "{table}");
        assert!(rows[1].trim_start().starts_with('0') && rows[2].contains("1 LOST"), "{table}");
        assert!(rows[3].trim_start().starts_with("merged") && rows[3].contains("250.1ms"), "{table}");
        assert!(
            rows[4].contains("512 commits/s")
                && rows[4].contains("2 deadlock(s)")
                && rows[4].contains("3 lock wait(s)")
        );
        // The per-second series of both agents, merged by second.
        let series = live.timeline().expect("timeline");
        assert_eq!(series.timeline.agents.len(), 2);
        assert_eq!(series.timeline.merged.len(), 1);
        assert_eq!((series.timeline.merged[0].completed, series.timeline.merged[0].in_flight), (2, 4));
        assert_eq!(series.merged[0].1.count(), 2);
        // A final interval of a few milliseconds folds into the one before.
        let last = Progress { elapsed_ms: 1040, in_flight: 0, ..p.clone() };
        live.progress(0, &last).expect("fold");
        let series = live.timeline().expect("timeline");
        let a0 = &series.timeline.agents[0];
        assert_eq!(a0.len(), 1, "{a0:?}");
        assert_eq!((a0[0].completed, a0[0].in_flight), (2, 0));
        assert!((a0[0].orch_per_sec - 2.0 / 1.04).abs() < 1e-9, "{a0:?}");
        assert_eq!(series.agents[0][0].1.count(), 2);
    }
}
