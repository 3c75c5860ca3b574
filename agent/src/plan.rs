//! What the coordinator asked this agent to do, as domain types: the
//! workload, the runtimes, the load model and its bounds. Built from the
//! wire by [`crate::wire`] (which refuses bad values); nothing below the
//! service layer sees a protobuf type.

use std::time::Duration;

use crate::scenario::Options;

/// One run, as this agent must carry it out.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub run_id: String,
    pub schema: String,
    pub agent_index: u32,
    pub agent_count: u32,
    pub workload: WorkloadSpec,
    pub runtime: RuntimeSpec,
    pub load: Load,
    /// How long new orchestrations are started.
    pub duration: Duration,
    /// How long in-flight orchestrations may take to finish after the deadline.
    pub drain_timeout: Duration,
    /// Who learns completions.
    pub tracking: Tracking,
    /// Interval of this agent's batched completion query (agent tracking).
    pub completion_poll: Duration,
    /// Artificial one-way delay to the database (zero: none).
    pub db_latency: Duration,
    /// Stop starting after this many orchestrations.
    pub iterations: Option<u64>,
}

/// Who learns which instances reached a terminal status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// This agent queries for its own instances every `completion_poll`:
    /// the generator's query rate grows with the number of agents.
    Agent,
    /// The coordinator queries once per tick for every agent's instances and
    /// sends each agent its terminal ones; this agent reports what it started.
    Cluster,
}

/// The scenario and its options as given (the scenario checks them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub scenario: String,
    pub options: Options,
    pub seed: u64,
}

/// The duroxide runtimes of this agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSpec {
    pub runtimes: u32,
    pub orchestration_concurrency: u32,
    pub worker_concurrency: u32,
    pub poll_interval: Duration,
    /// `None` keeps duroxide's default.
    pub orchestrator_lock_timeout: Option<Duration>,
    pub worker_lock_timeout: Option<Duration>,
}

/// How starts are paced.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// Keep this many orchestrations in flight.
    Closed { concurrency: u64 },
    /// Start on a schedule.
    Open(OpenLoop),
}

/// An open-loop schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenLoop {
    /// This agent's starts per second.
    pub rate_per_sec: f64,
    pub arrival: Arrival,
    /// First start this long after the common start.
    pub offset: Duration,
    /// Seed of the gaps' random numbers.
    pub seed: u64,
    /// Starts due while this many are in flight are dropped.
    pub max_in_flight: u64,
}

/// Spacing of open-loop starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// One start every 1/rate seconds.
    Constant,
    /// Exponential gaps with mean 1/rate (independent arrivals).
    Poisson,
}

/// The gaps between open-loop starts.
#[derive(Debug)]
pub struct Schedule {
    mean_gap_s: f64,
    poisson: bool,
    state: u64,
}

impl Schedule {
    pub fn new(open: &OpenLoop) -> Self {
        Schedule { mean_gap_s: 1.0 / open.rate_per_sec, poisson: open.arrival == Arrival::Poisson, state: open.seed }
    }

    /// splitmix64: a uniform number in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The gap until the next start.
    pub fn gap(&mut self) -> Duration {
        let s = if self.poisson { -(1.0 - self.uniform()).ln() * self.mean_gap_s } else { self.mean_gap_s };
        Duration::from_secs_f64(s.min(3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_space_starts_at_the_rate() {
        let open =
            |arrival| OpenLoop { rate_per_sec: 200.0, arrival, offset: Duration::ZERO, seed: 42, max_in_flight: 1 };
        let mut constant = Schedule::new(&open(Arrival::Constant));
        assert!((0..100).all(|_| constant.gap() == Duration::from_secs_f64(0.005)));
        // Poisson: mean gap 1/rate, and the spread of an exponential
        // distribution (standard deviation equal to the mean).
        let mut poisson = Schedule::new(&open(Arrival::Poisson));
        let gaps: Vec<f64> = (0..20_000).map(|_| poisson.gap().as_secs_f64()).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.005).abs() < 0.0002, "mean gap {mean}");
        assert!((var.sqrt() - 0.005).abs() < 0.0003, "sd {}", var.sqrt());
        // The same seed gives the same schedule, another seed another one.
        let gaps_of = |seed| {
            let mut s = Schedule::new(&OpenLoop { seed, ..open(Arrival::Poisson) });
            (0..5).map(|_| s.gap()).collect::<Vec<_>>()
        };
        assert_eq!(gaps_of(7), gaps_of(7));
        assert_ne!(gaps_of(7), gaps_of(8));
    }
}
