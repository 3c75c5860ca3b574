//! A latency histogram as fixed buckets (what a Prometheus histogram
//! carries): each HdrHistogram bucket falls into the first bound at or
//! above the highest value it stands for, so a count is exact to the
//! histogram's own resolution.

use super::{LatencyHistogram, Repr, buckets};

impl LatencyHistogram {
    /// Samples per bound in `bounds_us` (ascending), each counting the
    /// samples above the bound before it; one more entry for the samples
    /// above the last bound. Not cumulative.
    pub fn bucket_counts(&self, bounds_us: &[u64]) -> Vec<u64> {
        let mut out = vec![0; bounds_us.len() + 1];
        let mut put = |highest: u64, count: u64| {
            let i = bounds_us.partition_point(|&b| b < highest);
            out[i] += count;
        };
        match &self.repr {
            Repr::Empty => {}
            Repr::Sparse { entries, .. } => {
                let b = buckets();
                for &(v, c) in entries {
                    put(b.highest_equivalent(v), c);
                }
            }
            Repr::Dense(d) => {
                for v in d.iter_recorded() {
                    put(d.highest_equivalent(v.value_iterated_to()), v.count_at_value());
                }
            }
        }
        out
    }

    /// The sum of every sample in microseconds (the mean times the count).
    pub fn sum_us(&self) -> f64 {
        self.mean_us() * self.count() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_into_the_first_bound_at_or_above_them() {
        let mut h = LatencyHistogram::new();
        for us in [500, 1_000, 1_500, 9_000, 2_000_000] {
            h.record_us(us);
        }
        let bounds = [1_000, 10_000, 1_000_000];
        assert_eq!(h.bucket_counts(&bounds), vec![2, 2, 0, 1]);
        // The sparse form (as decoded from the wire) counts the same.
        let sparse = LatencyHistogram::decode(&h.encode()).expect("decode");
        assert_eq!(sparse.bucket_counts(&bounds), vec![2, 2, 0, 1]);
        assert_eq!(LatencyHistogram::new().bucket_counts(&bounds), vec![0; 4]);
        let sum = h.sum_us();
        assert!((sum - 2_012_000.0).abs() < 2_012_000.0 * 0.001, "{sum}");
    }
}
