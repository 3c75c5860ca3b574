//! What the live view shows once a second: a snapshot of the run so far,
//! built by the run's live state and drawn by the console renderer.

use std::collections::BTreeMap;

use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::tally::Counts;

use super::{DbSample, TimePoint};

/// One agent's line of the live view.
#[derive(Debug, Clone)]
pub struct FrameRow {
    pub index: usize,
    pub alive: bool,
    /// Totals so far.
    pub counts: Counts,
    /// Its last whole second.
    pub last: Option<TimePoint>,
    pub in_flight: u64,
}

/// What the live view shows, once a second.
#[derive(Debug)]
pub struct Frame<'a> {
    pub elapsed_s: f64,
    pub rows: Vec<FrameRow>,
    pub total: Counts,
    pub in_flight: u64,
    /// Headline p99 of the run so far.
    pub p99_us: u64,
    /// The headline latency of the run so far, merged over every agent.
    pub headline: &'a LatencyHistogram,
    /// The completion-observation delay of the run so far, likewise.
    pub observation: &'a LatencyHistogram,
    /// Totals so far per scenario, over every agent.
    pub scenarios: BTreeMap<&'a str, Counts>,
    /// Provider errors retried so far, summed over the agents.
    pub provider_errors: BTreeMap<&'a str, u64>,
    /// The latest second merged over every agent (exactly).
    pub merged_last: Option<TimePoint>,
    /// The database's latest sample.
    pub db: Option<&'a DbSample>,
    /// Load stages: what the plan offers now (starts per second, or the
    /// in-flight target), and whether it is a rate.
    pub offered: Option<(f64, bool)>,
    /// What the plan offers now, staged or not (None after the plan: the
    /// drain offers nothing).
    pub offered_now: Option<(f64, bool)>,
}
