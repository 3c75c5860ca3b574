//! Live progress: folds the agents' once-a-second interval messages into
//! running totals (histogram deltas merged exactly) and renders one line.

use std::time::Instant;

use loadgen_common::histogram::{HistogramError, LatencyHistogram};
use loadgen_common::proto::Progress;
use loadgen_common::result::{Counts, Histograms, MemorySample};

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
        }
    }

    /// Fold one progress message of agent `i`.
    pub fn progress(&mut self, i: usize, p: &Progress) -> Result<(), HistogramError> {
        let delta = LatencyHistogram::decode(&p.e2e_latency)?;
        self.e2e.merge(&delta)?;
        if let Some(h) = self.hist.get_mut(i) {
            h.merge(&Histograms {
                e2e: delta.clone(),
                observed: LatencyHistogram::decode(&p.observed_latency)?,
                start: LatencyHistogram::decode(&p.start_latency)?,
                intended: LatencyHistogram::decode(&p.intended_latency)?,
            })?;
        }
        if let (Some(c), Some(interval)) = (self.per_agent.get_mut(i), p.interval.as_ref()) {
            c.add(&interval.into());
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

    /// Latency samples agent `i` reported through its progress messages.
    pub fn streamed_samples(&self, i: usize) -> u64 {
        self.samples.get(i).copied().unwrap_or(0)
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
    }
}
