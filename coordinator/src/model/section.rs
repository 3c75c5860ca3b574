//! The figures of one agent, one scenario or the merged run: counts, rates
//! and latencies, and the histogram a run is judged by.

use loadgen_common::histogram::{LatencyHistogram, LatencySummary};
use loadgen_common::tally::{Counts, Histograms};
use serde::{Deserialize, Serialize};

/// Figures of one agent, one scenario, or the merged run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub counts: Counts,
    /// From the common start instant to the end of the drain.
    pub elapsed_s: f64,
    pub orch_per_sec: f64,
    pub activities_per_sec: f64,
    /// End-to-end: start call issued until the runtime recorded the terminal
    /// status (`executions.completed_at`, millisecond precision).
    pub e2e_latency: LatencySummary,
    /// Start call issued until the generator's completion query saw the
    /// terminal status (adds up to one completion-poll interval).
    pub observed_latency: LatencySummary,
    /// Duration of the start call itself.
    pub start_latency: LatencySummary,
    /// Open loop: from each orchestration's intended start time until the
    /// runtime recorded its terminal status, so it includes any wait to be
    /// started (no coordinated omission). Absent in closed-loop runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_latency: Option<LatencySummary>,
    /// From the runtime's terminal status until the agent learned of it:
    /// the delay completion tracking adds to `observed_latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation_delay: Option<LatencySummary>,
    /// Open loop: how late each start call began (actual minus intended
    /// start), the generator's own scheduling delay. Absent in closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_lateness: Option<LatencySummary>,
}

impl Section {
    /// Derive rates and percentiles from counts and histograms.
    pub fn new(counts: Counts, elapsed_s: f64, h: &Histograms) -> Self {
        let rate = |n: u64| if elapsed_s > 0.0 { n as f64 / elapsed_s } else { 0.0 };
        Section {
            orch_per_sec: rate(counts.completed),
            activities_per_sec: rate(counts.activities),
            counts,
            elapsed_s,
            e2e_latency: h.e2e.summary(),
            observed_latency: h.observed.summary(),
            start_latency: h.start.summary(),
            intended_latency: (h.intended.count() > 0).then(|| h.intended.summary()),
            observation_delay: (h.observation.count() > 0).then(|| h.observation.summary()),
            start_lateness: (h.lateness.count() > 0).then(|| h.lateness.summary()),
        }
    }

    /// The latency a run is judged by: from the intended start in open loop,
    /// from the start call in closed loop. Every renderer, gate and
    /// comparison asks here.
    pub fn headline_latency(&self) -> &LatencySummary {
        self.intended_latency.as_ref().unwrap_or(&self.e2e_latency)
    }

    /// What [`Self::headline_latency`] measures, for people.
    pub fn headline_definition(&self) -> &'static str {
        if self.intended_latency.is_some() { "from the intended start" } else { "from the start call" }
    }
}

/// The histogram a run is judged by (the same choice as [`Section::headline_latency`]).
pub fn headline_histogram(h: &Histograms) -> &LatencyHistogram {
    if h.intended.count() > 0 { &h.intended } else { &h.e2e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headline_is_decided_in_one_place() {
        let mut h = Histograms::default();
        h.e2e.record_us(100);
        let closed = Section::new(Counts::default(), 1.0, &h);
        assert_eq!((closed.headline_latency().p99_us, closed.headline_definition()), (100, "from the start call"));
        h.intended.record_us(900);
        let open = Section::new(Counts::default(), 1.0, &h);
        assert_eq!(open.headline_latency().p99_us, headline_histogram(&h).quantile_us(0.99));
        assert_eq!(open.headline_definition(), "from the intended start");
    }
}
