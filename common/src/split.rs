//! Largest-remainder (Hamilton) apportionment of a cluster-wide budget, the
//! one split both binaries use.
//!
//! The coordinator splits the concurrency budget (and the arrival rate) into
//! one slice per agent; an agent following a changing cluster-wide target
//! takes its own share of it ([`share`]). The slices must sum exactly to the
//! budget and be as even as the weights allow; largest remainder gives both,
//! deterministically.

use thiserror::Error;

/// Why a budget cannot be split.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApportionError {
    #[error("there are no agents to split the budget over")]
    NoAgents,
    #[error("every agent has weight 0")]
    ZeroWeights,
    #[error("budget {budget} is smaller than the number of agents ({agents}); every agent needs a slice of at least 1")]
    BudgetTooSmall { budget: u64, agents: usize },
}

/// Split `total` in proportion to `weights`: each share is the floor of its
/// exact quota, and the units left over go to the largest remainders (ties to
/// the lower index). The result always sums to `total`.
pub fn apportion(total: u64, weights: &[u64]) -> Result<Vec<u64>, ApportionError> {
    if weights.is_empty() {
        return Err(ApportionError::NoAgents);
    }
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return Err(ApportionError::ZeroWeights);
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = u128::from(total) * u128::from(w);
        // quotient fits in u64: it is at most `total`.
        shares.push((exact / sum) as u64);
        remainders.push((exact % sum, i));
    }
    let given: u64 = shares.iter().sum();
    let left = total - given;
    // Largest remainder first; on equal remainders the lower index wins.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(left as usize) {
        shares[i] += 1;
    }
    Ok(shares)
}

/// Split a closed-loop concurrency budget evenly over `agents`, refusing a
/// budget that would leave an agent with nothing to do.
pub fn split_budget(budget: u64, agents: usize) -> Result<Vec<u64>, ApportionError> {
    if agents == 0 {
        return Err(ApportionError::NoAgents);
    }
    if budget < agents as u64 {
        return Err(ApportionError::BudgetTooSmall { budget, agents });
    }
    apportion(budget, &vec![1; agents])
}

/// Agent `index` of `agents`' share of `total` split evenly: exactly its
/// entry of [`apportion`] with equal weights (ties to the lower index), in
/// closed form, for the driver's hot path.
pub fn share(total: u64, index: u32, agents: u32) -> u64 {
    let n = u64::from(agents.max(1));
    total / n + u64::from(u64::from(index) < total % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_sum_exactly_and_differ_by_at_most_one() {
        for agents in 1..=17usize {
            for budget in agents as u64..=200 {
                let s = split_budget(budget, agents).expect("valid split");
                assert_eq!(s.len(), agents);
                assert_eq!(s.iter().sum::<u64>(), budget, "budget {budget} over {agents}");
                let (min, max) = (s.iter().min().copied(), s.iter().max().copied());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{s:?}");
                assert!(s.iter().all(|&x| x >= 1));
                // Larger slices come first (ties go to the lower index).
                assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
            }
        }
    }

    #[test]
    fn weighted_split_follows_quotas() {
        // quotas 10*1/6, 10*2/6, 10*3/6 = 1.67, 3.33, 5.0 -> floors 1,3,5, one left for the .67
        assert_eq!(apportion(10, &[1, 2, 3]), Ok(vec![2, 3, 5]));
        assert_eq!(apportion(0, &[1, 1]), Ok(vec![0, 0]));
        assert_eq!(apportion(7, &[0, 1]), Ok(vec![0, 7]));
        // Every share is within one of its exact quota.
        let weights = [5u64, 9, 1, 13, 2];
        for total in 0..300u64 {
            let s = apportion(total, &weights).expect("split");
            assert_eq!(s.iter().sum::<u64>(), total);
            let sum: u64 = weights.iter().sum();
            for (share, w) in s.iter().zip(weights) {
                let quota = total as f64 * w as f64 / sum as f64;
                assert!((*share as f64 - quota).abs() < 1.0, "{share} vs {quota}");
            }
        }
    }

    #[test]
    fn an_agents_share_is_its_entry_of_the_equal_split() {
        for agents in 1..=9u32 {
            for total in 0..=60u64 {
                let all = apportion(total, &vec![1; agents as usize]).expect("split");
                let each: Vec<u64> = (0..agents).map(|i| share(total, i, agents)).collect();
                assert_eq!(each, all, "{total} over {agents}");
            }
        }
    }

    #[test]
    fn refuses_impossible_splits() {
        assert_eq!(split_budget(2, 3), Err(ApportionError::BudgetTooSmall { budget: 2, agents: 3 }));
        assert_eq!(split_budget(5, 0), Err(ApportionError::NoAgents));
        assert_eq!(apportion(5, &[]), Err(ApportionError::NoAgents));
        assert_eq!(apportion(5, &[0, 0]), Err(ApportionError::ZeroWeights));
    }
}
