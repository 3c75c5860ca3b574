//! How a run's starts are paced: one type, resolved once from the profile by
//! the coordinator (the cluster's load), split into one share per agent
//! ([`Load::shares`]), carried over the wire and followed by each agent.
//!
//! An open loop starts on a schedule whatever the system's latency, and drops
//! starts due while its cap is in flight; a closed loop keeps a number of
//! orchestrations in flight. Either is constant or staged (its value changes
//! over time, see [`crate::stages`]).

use std::time::Duration;

use crate::split::{ApportionError, share, split_budget};
use crate::stages::{Arrivals, StagePlan};

/// Spacing of open-loop starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly spaced at the rate of the moment.
    #[default]
    Constant,
    /// Independent arrivals at the rate of the moment (Poisson).
    Poisson,
}

impl Arrival {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
        }
    }
}

/// Open or closed loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// Keep the plan's value in flight.
    Closed,
    /// Start at the plan's rate, spaced so.
    Open(Arrival),
}

/// The load of a run (cluster-wide) or of one agent (its share).
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub kind: Loop,
    /// Open loop: starts per second over time, its holder's own (the
    /// cluster's, or one agent's share). Closed loop: the cluster's
    /// in-flight target over time; each agent keeps its share of the
    /// moment's target ([`Load::target_at`]).
    pub plan: StagePlan,
    /// The most its holder keeps in flight: a closed loop's peak target, an
    /// open loop's cap (starts due over it are dropped). An agent's is its
    /// share of the cluster's.
    pub max_in_flight: u64,
    /// True when the load changes over time (stages), not a constant rate or
    /// budget.
    pub staged: bool,
}

/// Why a load cannot be split over the agents.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShareError {
    #[error(transparent)]
    Split(#[from] ApportionError),
    #[error("--rate {rate}/s is too low for {agents} agents (each needs at least 0.001/s)")]
    RateTooLow { rate: f64, agents: usize },
}

impl Load {
    /// A constant closed loop of `in_flight` for `duration`.
    pub fn closed(in_flight: u64, duration: Duration) -> Self {
        Load {
            kind: Loop::Closed,
            plan: StagePlan::constant(in_flight as f64, duration),
            max_in_flight: in_flight,
            staged: false,
        }
    }

    /// A constant open loop of `rate` starts per second for `duration`.
    pub fn open(rate: f64, arrival: Arrival, max_in_flight: u64, duration: Duration) -> Self {
        Load { kind: Loop::Open(arrival), plan: StagePlan::constant(rate, duration), max_in_flight, staged: false }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.kind, Loop::Open(_))
    }

    /// An open loop's spacing; `None` for a closed loop.
    pub fn arrival(&self) -> Option<Arrival> {
        match self.kind {
            Loop::Open(a) => Some(a),
            Loop::Closed => None,
        }
    }

    /// The peak rate (open loop) or the peak in-flight target (closed loop).
    pub fn peak(&self) -> f64 {
        self.plan.peak()
    }

    /// A closed loop with a target that changes: it is refilled on a tick as
    /// well as on every completion.
    pub fn follows_a_changing_target(&self) -> bool {
        !self.is_open() && self.staged && !self.plan.is_constant()
    }

    /// Closed loop: how many agent `index` of `agents` keeps in flight `at`
    /// into the run: its share of the cluster's target of the moment, never
    /// more than its own cap (a constant load: the cap itself).
    pub fn target_at(&self, at: Duration, index: u32, agents: u32) -> u64 {
        if !self.staged {
            return self.max_in_flight;
        }
        let cluster = self.plan.value_at(at).round() as u64;
        share(cluster, index, agents).min(self.max_in_flight)
    }

    /// Open loop: the due times of starts, `phase` placing its holder's
    /// constant arrivals among the cluster's and `seed` driving Poisson gaps;
    /// `None` for a closed loop.
    pub fn arrivals(&self, phase: f64, seed: u64) -> Option<Arrivals> {
        let arrival = self.arrival()?;
        Some(Arrivals::new(self.plan.clone(), arrival == Arrival::Poisson, phase, seed))
    }

    /// Each of `agents` agents' share of this (cluster-wide) load: the
    /// in-flight cap split by largest remainder; an open loop's rates by each
    /// agent's share of the peak rate (itself split by largest remainder, in
    /// thousandths of a start per second); a closed loop's targets whole,
    /// each agent taking its share of the moment's.
    pub fn shares(&self, agents: usize) -> Result<Vec<Load>, ShareError> {
        let caps = split_budget(self.max_in_flight, agents)?;
        let rates = match self.kind {
            Loop::Open(_) => Some(rate_shares(self.peak(), agents)?),
            Loop::Closed => None,
        };
        Ok(caps
            .into_iter()
            .enumerate()
            .map(|(i, cap)| {
                let plan = match &rates {
                    Some(rates) if self.peak() > 0.0 => self.plan.scaled(rates[i] / self.peak()),
                    _ => self.plan.clone(),
                };
                Load { kind: self.kind, plan, max_in_flight: cap, staged: self.staged }
            })
            .collect())
    }
}

/// Each agent's share of an open-loop rate, split like the budget (largest
/// remainder, in thousandths of a start per second).
pub fn rate_shares(rate: f64, agents: usize) -> Result<Vec<f64>, ShareError> {
    let milli = (rate * 1000.0).round() as u64;
    if (milli as usize) < agents {
        return Err(ShareError::RateTooLow { rate, agents });
    }
    Ok(split_budget(milli, agents)?.into_iter().map(|m| m as f64 / 1000.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(20);

    #[test]
    fn a_closed_loop_splits_its_budget_and_each_agent_takes_its_share_of_a_changing_target() {
        let s = Load::closed(10, D).shares(3).expect("split");
        assert_eq!(s.iter().map(|l| l.max_in_flight).collect::<Vec<_>>(), [4, 3, 3]);
        assert!(s.iter().all(|l| l.target_at(Duration::from_secs(5), 0, 3) == l.max_in_flight));
        let staged = Load {
            kind: Loop::Closed,
            plan: StagePlan::parse("10s:12,10s:3", false, D).expect("stages"),
            max_in_flight: 12,
            staged: true,
        };
        assert!(staged.follows_a_changing_target());
        let s = staged.shares(3).expect("split");
        let at = |t: u64| (0..3).map(|i| s[i].target_at(Duration::from_secs(t), i as u32, 3)).sum::<u64>();
        assert_eq!((at(10), at(20)), (12, 3), "the agents' targets add up to the cluster's");
    }

    #[test]
    fn an_open_loop_splits_its_rate_and_cap_and_keeps_the_shape_of_its_stages() {
        let open = Load::open(10.0, Arrival::Poisson, 600, D);
        let s = open.shares(4).expect("split");
        assert_eq!(s.iter().map(|l| l.peak()).sum::<f64>(), 10.0);
        assert_eq!(s.iter().map(|l| l.max_in_flight).sum::<u64>(), 600);
        assert!(s.iter().all(|l| l.arrival() == Some(Arrival::Poisson) && !l.staged));
        let staged = Load {
            plan: StagePlan::parse("10s:10/s,10s:30/s", true, D).expect("stages"),
            staged: true,
            ..Load::open(30.0, Arrival::Constant, 100, D)
        };
        let s = staged.shares(3).expect("split");
        let at = |t: u64| s.iter().map(|l| l.plan.value_at(Duration::from_secs(t))).sum::<f64>();
        assert!((at(10) - 10.0).abs() < 1e-9 && (at(20) - 30.0).abs() < 1e-9, "{} {}", at(10), at(20));
        assert!(staged.arrivals(0.5, 1).is_some() && Load::closed(3, D).arrivals(0.5, 1).is_none());
    }

    #[test]
    fn loads_too_small_for_the_agents_are_refused() {
        assert!(matches!(Load::closed(2, D).shares(3), Err(ShareError::Split(_))));
        let e = Load::open(0.001, Arrival::Constant, 100, D).shares(2).expect_err("rate");
        assert_eq!(e.to_string(), "--rate 0.001/s is too low for 2 agents (each needs at least 0.001/s)");
    }
}
