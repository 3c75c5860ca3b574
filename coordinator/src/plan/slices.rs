//! Each agent's share of a run: its share of the load (its slice of the
//! in-flight budget or cap, of the rate and of the rate's stages, see
//! [`Load::shares`]) and of the iterations, its schedule phase and its seed.
//! Computed once per run, where the agents are known, and carried to the
//! Prepare requests and the report alike.

use loadgen_common::load::Load;
use loadgen_common::split::split_budget;

use super::PlanError;
use super::profile::Profile;

/// One agent's share of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentSlice {
    pub index: u32,
    /// Its share of the run's load.
    pub load: Load,
    /// Open loop: where this agent's constant-arrival starts fall between
    /// the cluster's, `(i + 0.5) / n`, so agents interleave instead of firing
    /// in lockstep.
    pub phase: f64,
    /// Seed of this agent's Poisson gaps.
    pub seed: u64,
    /// Stop after this many starts.
    pub iterations: Option<u64>,
}

impl AgentSlice {
    /// Orchestrations kept in flight (closed loop) or the in-flight cap (open loop).
    pub fn in_flight(&self) -> u64 {
        self.load.max_in_flight
    }
}

/// Refuse, before anything starts, a plan that cannot be split over `agents`.
pub fn check(profile: &Profile, agents: usize) -> Result<(), PlanError> {
    slices(profile, agents, 0).map(|_| ())
}

/// The slices of a run of `profile` over `agents`, seeded by `run_seed`.
pub fn slices(profile: &Profile, agents: usize, run_seed: u64) -> Result<Vec<AgentSlice>, PlanError> {
    slices_of(&profile.load()?, profile.iterations, agents, run_seed)
}

/// The slices of `load` and `iterations` (a run's resolved profile) over
/// `agents`, seeded by `run_seed`.
pub fn slices_of(
    load: &Load,
    iterations: Option<u64>,
    agents: usize,
    run_seed: u64,
) -> Result<Vec<AgentSlice>, PlanError> {
    let loads = load.shares(agents)?;
    let iterations = match iterations {
        // Every agent needs at least one iteration (0 would mean no limit).
        Some(n) if n < agents as u64 => {
            return Err(PlanError::Invalid(format!(
                "--iterations {n} is smaller than the number of agents ({agents}); every agent needs at least 1"
            )));
        }
        Some(n) => split_budget(n, agents)?.into_iter().map(Some).collect(),
        None => vec![None; agents],
    };
    Ok(loads
        .into_iter()
        .zip(iterations)
        .enumerate()
        .map(|(i, (load, iterations))| AgentSlice {
            index: i as u32,
            load,
            phase: (i as f64 + 0.5) / agents as f64,
            seed: run_seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            iterations,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::profile::find_profile;
    use loadgen_common::load::ShareError;

    #[test]
    fn slices_sum_to_the_plan() {
        let mut p = find_profile("light").expect("light");
        p.max_concurrent = 10;
        p.iterations = Some(7);
        let s = slices(&p, 3, 42).expect("slices");
        assert_eq!(s.iter().map(AgentSlice::in_flight).collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(s.iter().map(|a| a.iterations.unwrap_or(0)).sum::<u64>(), 7);
        assert!(s.iter().all(|a| !a.load.is_open() && !a.load.staged));
        assert_ne!(s[0].seed, s[1].seed);
        p.rate = Some(10.0);
        let s = slices(&p, 4, 1).expect("open");
        assert_eq!(s.iter().map(|a| a.load.peak()).sum::<f64>(), 10.0);
        assert_eq!(s.iter().map(|a| a.phase).collect::<Vec<_>>(), [0.125, 0.375, 0.625, 0.875]);
        assert_eq!(s.iter().map(AgentSlice::in_flight).sum::<u64>(), 600, "a minute of arrivals split");
        assert!(s.iter().all(|a| a.load.is_open() && !a.load.staged), "a constant rate has no stages");
    }

    #[test]
    fn stages_are_split_by_each_agents_share_of_the_peak() {
        let mut p = find_profile("light").expect("light");
        p.stages = Some("10s:10/s,10s:30/s".into());
        p.settle_stages().expect("settle");
        assert_eq!((p.rate, p.duration), (Some(30.0), Duration::from_secs(20)));
        let s = slices(&p, 3, 1).expect("open stages");
        let at = |t: u64| s.iter().map(|a| a.load.plan.value_at(Duration::from_secs(t))).sum::<f64>();
        assert!((at(10) - 10.0).abs() < 1e-9 && (at(20) - 30.0).abs() < 1e-9, "{} {}", at(10), at(20));
        // Closed-loop stages go to every agent whole: each takes its share.
        p.stages = Some("5s:3,5s:12".into());
        p.settle_stages().expect("settle closed");
        assert_eq!((p.rate, p.max_concurrent), (None, 12));
        let s = slices(&p, 3, 1).expect("closed stages");
        assert!(s.iter().all(|a| a.load.staged && a.load.peak() == 12.0));
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
        assert!(matches!(check(&p, 2), Err(PlanError::Share(ShareError::RateTooLow { .. }))));
    }
}
