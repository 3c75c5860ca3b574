//! Each agent's share of a run: its slice of the in-flight budget (the open
//! loop's cap), of the rate (and of the rate's stages) and of the
//! iterations, its schedule phase and its seed. Computed once per run, where the agents are known, and carried
//! to the Prepare requests and the report alike.

use loadgen_common::stages::StagePlan;

#[cfg(test)]
use std::time::Duration;

use super::PlanError;
use super::profile::Profile;
use loadgen_common::split::split_budget;

/// One agent's share of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSlice {
    pub index: u32,
    /// Orchestrations kept in flight (closed loop) or the in-flight cap (open loop).
    pub concurrency: u64,
    /// Open loop: starts per second (the peak, with stages).
    pub rate: Option<f64>,
    /// Load that changes over time: this agent's rates (open loop) or the
    /// cluster's in-flight targets, which the agent takes its share of
    /// (closed loop). `None`: constant.
    pub stages: Option<StagePlan>,
    /// Open loop: where this agent's constant-arrival starts fall between
    /// the cluster's, `(i + 0.5) / n`, so agents interleave instead of firing
    /// in lockstep.
    pub phase: f64,
    /// Seed of this agent's Poisson gaps.
    pub seed: u64,
    /// Stop after this many starts.
    pub iterations: Option<u64>,
}

/// Each agent's share of an open-loop rate, split like the budget (largest
/// remainder, in thousandths of a start per second).
pub fn rate_shares(rate: f64, agents: usize) -> Result<Vec<f64>, PlanError> {
    let milli = (rate * 1000.0).round() as u64;
    if (milli as usize) < agents {
        return Err(PlanError::RateTooLow { rate, agents });
    }
    Ok(split_budget(milli, agents)?.into_iter().map(|m| m as f64 / 1000.0).collect())
}

/// Refuse, before anything starts, a plan that cannot be split over `agents`.
pub fn check(profile: &Profile, agents: usize) -> Result<(), PlanError> {
    slices(profile, agents, 0).map(|_| ())
}

/// The slices of a run of `profile` over `agents`, seeded by `run_seed`.
pub fn slices(profile: &Profile, agents: usize, run_seed: u64) -> Result<Vec<AgentSlice>, PlanError> {
    let budget = split_budget(profile.in_flight_budget(), agents)?;
    let load = profile.load_plan()?;
    let rates = match profile.rate {
        Some(rate) => rate_shares(rate, agents)?.into_iter().map(Some).collect(),
        None => vec![None; agents],
    };
    let iterations = match profile.iterations {
        // Every agent needs at least one iteration (0 would mean no limit).
        Some(n) if n < agents as u64 => {
            return Err(PlanError::Invalid(format!(
                "--iterations {n} is smaller than the number of agents ({agents}); every agent needs at least 1"
            )));
        }
        Some(n) => split_budget(n, agents)?.into_iter().map(Some).collect(),
        None => vec![None; agents],
    };
    Ok((0..agents)
        .map(|i| {
            let rate = rates[i];
            let stages = match (load.staged, load.open, rate, profile.rate) {
                (false, ..) => None,
                // This agent's part of every rate: its share of the peak.
                (true, true, Some(mine), Some(peak)) if peak > 0.0 => Some(load.plan.scaled(mine / peak)),
                (true, true, ..) => None,
                (true, false, ..) => Some(load.plan.clone()),
            };
            AgentSlice {
                index: i as u32,
                concurrency: budget[i],
                rate,
                stages,
                phase: (i as f64 + 0.5) / agents as f64,
                seed: run_seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                iterations: iterations[i],
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::profile::find_profile;

    #[test]
    fn slices_sum_to_the_plan() {
        let mut p = find_profile("light").expect("light");
        p.max_concurrent = 10;
        p.iterations = Some(7);
        let s = slices(&p, 3, 42).expect("slices");
        assert_eq!(s.iter().map(|a| a.concurrency).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(s.iter().map(|a| a.iterations.unwrap_or(0)).sum::<u64>(), 7);
        assert!(s.iter().all(|a| a.rate.is_none() && a.stages.is_none()));
        assert_ne!(s[0].seed, s[1].seed);
        p.rate = Some(10.0);
        let s = slices(&p, 4, 1).expect("open");
        assert_eq!(s.iter().map(|a| a.rate.unwrap_or(0.0)).sum::<f64>(), 10.0);
        assert_eq!(s.iter().map(|a| a.phase).collect::<Vec<_>>(), [0.125, 0.375, 0.625, 0.875]);
        assert_eq!(s.iter().map(|a| a.concurrency).sum::<u64>(), 600, "a minute of arrivals split");
        assert!(s.iter().all(|a| a.stages.is_none()), "a constant rate has no stages");
    }

    #[test]
    fn stages_are_split_by_each_agents_share_of_the_peak() {
        let mut p = find_profile("light").expect("light");
        p.stages = Some("10s:10/s,10s:30/s".into());
        p.settle_stages().expect("settle");
        assert_eq!((p.rate, p.duration), (Some(30.0), Duration::from_secs(20)));
        let s = slices(&p, 3, 1).expect("open stages");
        let at =
            |t: u64| s.iter().map(|a| a.stages.as_ref().expect("staged").value_at(Duration::from_secs(t))).sum::<f64>();
        assert!((at(10) - 10.0).abs() < 1e-9 && (at(20) - 30.0).abs() < 1e-9, "{} {}", at(10), at(20));
        // Closed-loop stages go to every agent whole: each takes its share.
        p.stages = Some("5s:3,5s:12".into());
        p.settle_stages().expect("settle closed");
        assert_eq!((p.rate, p.max_concurrent), (None, 12));
        let s = slices(&p, 3, 1).expect("closed stages");
        assert!(s.iter().all(|a| a.stages.as_ref().is_some_and(|st| st.peak() == 12.0)));
    }

    #[test]
    fn impossible_splits_are_refused() {
        let mut p = find_profile("light").expect("light");
        p.max_concurrent = 2;
        assert_eq!(
            check(&p, 3).expect_err("small").to_string(),
            "budget 2 is smaller than the number of agents (3); every agent needs a slice of at least 1"
        );
        p.max_concurrent = 10;
        p.rate = Some(0.001);
        assert!(matches!(check(&p, 2), Err(PlanError::RateTooLow { .. })));
    }
}
