//! One agent's part of a run: its figures, its memory and its clock, and
//! what became of its work when it was lost mid-run.

use serde::{Deserialize, Serialize};

use super::section::Section;
use loadgen_common::tally::Counts;

/// One agent's part of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    pub index: u32,
    pub address: String,
    pub hostname: String,
    /// Its slice of the cluster-wide concurrency budget (the in-flight cap in open loop).
    pub concurrency: u64,
    /// Connection-pool size of each provider in the agent process.
    #[serde(default)]
    pub pool_max: u32,
    #[serde(flatten)]
    pub section: Section,
    /// True when the agent was lost mid-run: its figures are what it streamed
    /// until then (see `RunReport::lost_agents`).
    #[serde(default)]
    pub lost: bool,
    /// The agent process's resident memory over the run.
    #[serde(default)]
    pub memory: MemorySummary,
    /// CPU seconds (user + system) the agent process used during the run.
    #[serde(default)]
    pub cpu_s: f64,
    /// Its wall clock against the coordinator's, read at its Hello (absent
    /// from an agent that does not send its time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockReading>,
    /// Its wall clock against the coordinator's during the run, from its
    /// progress messages (absent from an agent that does not send its time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_during: Option<ClockRange>,
}

/// The least and most an agent's clock was off during the run: each
/// progress message's time against its arrival, so each offset reads low by
/// the message's transit (milliseconds on a LAN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockRange {
    pub min_offset_ms: f64,
    pub max_offset_ms: f64,
}

impl ClockRange {
    /// The offset furthest from zero.
    pub fn largest(&self) -> f64 {
        if self.max_offset_ms.abs() >= self.min_offset_ms.abs() { self.max_offset_ms } else { self.min_offset_ms }
    }
}

impl AgentReport {
    /// The largest offset measured, at the Hello or during the run.
    pub fn largest_clock_offset_ms(&self) -> Option<f64> {
        let during = self.clock_during.map(|c| c.largest());
        match (self.clock.map(|c| c.offset_ms), during) {
            (Some(a), Some(b)) => Some(if a.abs() >= b.abs() { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}

/// An agent's wall clock against the coordinator's, from its Hello: its
/// reading against the middle of the call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockReading {
    /// Agent minus coordinator, in milliseconds (positive: the agent is ahead).
    pub offset_ms: f64,
    /// Half the Hello's round trip: the offset is within this of the truth.
    pub within_ms: f64,
}

impl ClockReading {
    /// Offsets from this size on are named in the summary: duroxide-pg's
    /// leases compare the runtimes' clocks, and its lock timeouts are
    /// seconds (5 s for orchestrations by default).
    pub const NAMED_MS: f64 = 1000.0;
}

/// One memory sample of an agent process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since the common start instant.
    pub t_s: f64,
    pub rss_mb: f64,
}

/// An agent's memory over a run: the samples (one a second) and what they say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemorySummary {
    pub start_mb: f64,
    pub end_mb: f64,
    pub peak_mb: f64,
    /// Least-squares slope after the first fifth of the run (warm-up), in MB
    /// per minute; absent with fewer than 5 samples after warm-up.
    pub growth_mb_per_min: Option<f64>,
    pub samples: Vec<MemorySample>,
}

impl MemorySummary {
    /// Summarise samples taken in time order.
    pub fn from_samples(samples: Vec<MemorySample>) -> Self {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return Self::default() };
        let warm = last.t_s * 0.2;
        let steady: Vec<&MemorySample> = samples.iter().filter(|s| s.t_s >= warm).collect();
        let growth_mb_per_min = (steady.len() >= 5).then(|| {
            let n = steady.len() as f64;
            let mt = steady.iter().map(|s| s.t_s).sum::<f64>() / n;
            let mm = steady.iter().map(|s| s.rss_mb).sum::<f64>() / n;
            let cov: f64 = steady.iter().map(|s| (s.t_s - mt) * (s.rss_mb - mm)).sum();
            let var: f64 = steady.iter().map(|s| (s.t_s - mt).powi(2)).sum();
            if var > 0.0 { cov / var * 60.0 } else { 0.0 }
        });
        MemorySummary {
            start_mb: first.rss_mb,
            end_mb: last.rss_mb,
            peak_mb: samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max),
            growth_mb_per_min,
            samples,
        }
    }
}

/// An agent lost mid-run, and what became of the orchestrations it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LostAgent {
    pub index: u32,
    pub address: String,
    /// Seconds after the common start instant.
    pub at_s: f64,
    pub reason: String,
    /// What it had reported until then.
    pub last_reported: Counts,
    /// Orchestrations it had in flight by its last report.
    pub in_flight_at_loss: u64,
    /// Its instances as the database shows them after the others drained.
    pub instances_in_db: u64,
    pub completed_in_db: u64,
    pub failed_in_db: u64,
    pub still_running: u64,
    /// Of its instances, completed after it was lost (by the runtimes' own
    /// clocks), so by other runtimes.
    pub completed_by_others: u64,
    /// Lost to the fault schedule (kill-agent, freeze-agent): as planned,
    /// so the run is not degraded by it.
    #[serde(default)]
    pub planned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_growth_is_fitted_after_warm_up() {
        // 100 s of samples: a jump during warm-up, then +1 MB every 10 s (6 MB/min).
        let samples: Vec<MemorySample> = (0..=100)
            .map(|t| {
                let t = t as f64;
                MemorySample { t_s: t, rss_mb: if t < 10.0 { 20.0 + t } else { 40.0 + t / 10.0 } }
            })
            .collect();
        let m = MemorySummary::from_samples(samples);
        assert_eq!((m.start_mb, m.end_mb, m.peak_mb), (20.0, 50.0, 50.0));
        let g = m.growth_mb_per_min.expect("enough samples");
        assert!((g - 6.0).abs() < 1e-9, "{g}");
        assert_eq!(MemorySummary::from_samples(vec![]).growth_mb_per_min, None);
        let few = (0..3).map(|t| MemorySample { t_s: t as f64, rss_mb: 1.0 }).collect();
        assert_eq!(MemorySummary::from_samples(few).growth_mb_per_min, None);
    }
}
