//! Latency histograms with one set of bounds everywhere.
//!
//! Every latency in the system is recorded in microseconds into a
//! [`LatencyHistogram`] with the same lowest/highest trackable values and
//! significant digits, so two histograms can always be merged with
//! `Histogram::add` without loss. Percentiles are only ever read from a
//! histogram, never averaged across agents. On the wire a histogram travels as
//! the standard HdrHistogram V2 encoding, so other HdrHistogram tools can read it.

use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod buckets;
mod sparse;
use sparse::{decode_sparse, merge_entries};

/// Lowest trackable latency: 1 µs.
pub const LOWEST_US: u64 = 1;
/// Highest trackable latency: one hour. Longer values are clamped and counted
/// as saturated rather than lost.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// Significant decimal digits kept (relative error below 0.1%).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Why a histogram could not be decoded or merged.
#[derive(Debug, Error)]
pub enum HistogramError {
    #[error("histogram bytes do not decode: {0}")]
    Decode(String),
    #[error("histogram bounds differ from ours (low {low}, high {high}, {sigfig} digits); refusing an inexact merge")]
    Bounds { low: u64, high: u64, sigfig: u8 },
    #[error("histogram merge failed: {0}")]
    Merge(String),
}

/// Entries past which a sparse histogram becomes a dense one: 4,096 entries
/// of 16 bytes are 64 KiB, a third of a dense histogram's counts array.
const DENSE_AT: usize = 4096;

/// A latency histogram in microseconds with the workspace-wide bounds.
///
/// Three representations with one meaning. A dense HdrHistogram's counts
/// array for these bounds is 23,552 counters (184 KiB), allocated, zeroed and
/// scanned by every merge whatever it holds. A coordinator folding a
/// thousand agents' intervals a second (most holding a few dozen samples,
/// several holding none) would spend its time and memory on zeros. So a
/// histogram is *empty* until something is recorded or merged into it,
/// *sparse* (sorted `(value, count)` pairs of the non-zero buckets) when it
/// was decoded from the wire or merged from sparse ones, and *dense* once it
/// records samples itself or holds more than [`DENSE_AT`] distinct buckets.
/// Every statistic is computed exactly as HdrHistogram computes it (the
/// tests compare the representations), so which one a histogram uses never
/// shows in a figure.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    repr: Repr,
    saturated: u64,
}

#[derive(Clone, Debug, Default)]
enum Repr {
    #[default]
    Empty,
    /// Non-zero buckets as (lowest equivalent value, count), ascending by value.
    Sparse {
        entries: Vec<(u64, u64)>,
        total: u64,
    },
    Dense(Box<Histogram<u64>>),
}

/// A dense histogram with the standard bounds.
fn dense() -> Box<Histogram<u64>> {
    // The bounds are constants that `new_with_bounds` accepts (low >= 1,
    // high >= 2 * low, sigfig <= 5), so construction cannot fail.
    #[allow(clippy::expect_used)]
    Box::new(
        Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid"),
    )
}

/// Bucket arithmetic (equivalent values) for our bounds. It depends on the
/// lowest value and the precision only, so a histogram with the smallest
/// allowed range serves and costs nothing.
fn buckets() -> &'static Histogram<u64> {
    static BUCKETS: std::sync::OnceLock<Histogram<u64>> = std::sync::OnceLock::new();
    BUCKETS.get_or_init(|| {
        #[allow(clippy::expect_used)]
        Histogram::new_with_bounds(LOWEST_US, LOWEST_US * 2, SIGNIFICANT_DIGITS).expect("constant bounds are valid")
    })
}

impl LatencyHistogram {
    /// An empty histogram with the standard bounds (nothing is allocated
    /// until a sample arrives).
    pub fn new() -> Self {
        Self::default()
    }

    /// The dense form, made from whatever this holds.
    fn densify(&mut self) -> &mut Histogram<u64> {
        if !matches!(self.repr, Repr::Dense(_)) {
            let mut d = dense();
            if let Repr::Sparse { entries, .. } = &self.repr {
                for &(v, c) in entries {
                    // Values were checked against the bounds when decoded.
                    let _ = d.record_n(v, c);
                }
            }
            self.repr = Repr::Dense(d);
        }
        match &mut self.repr {
            Repr::Dense(d) => d,
            // Just made dense above.
            _ => unreachable!("densified"),
        }
    }

    /// Record one latency. Values above [`HIGHEST_US`] are clamped to it and
    /// counted in [`Self::saturated`]; values below 1 µs are recorded as 1 µs.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us);
    }

    /// Record one latency given in microseconds (see [`Self::record`]).
    pub fn record_us(&mut self, us: u64) {
        let us = us.max(LOWEST_US);
        if us > HIGHEST_US {
            self.saturated += 1;
        }
        // `saturating_record` clamps to the highest trackable value.
        match &mut self.repr {
            Repr::Dense(d) => d.saturating_record(us),
            _ => self.densify().saturating_record(us),
        }
    }

    /// Add every sample of `other` into `self` (exact: the bounds are identical).
    pub fn merge(&mut self, other: &LatencyHistogram) -> Result<(), HistogramError> {
        self.saturated += other.saturated;
        match (&mut self.repr, &other.repr) {
            (_, Repr::Empty) => {}
            (Repr::Empty, o) => self.repr = o.clone(),
            (Repr::Dense(d), Repr::Dense(o)) => {
                d.add(o.as_ref()).map_err(|e| HistogramError::Merge(format!("{e:?}")))?
            }
            (Repr::Dense(d), Repr::Sparse { entries, .. }) => {
                for &(v, c) in entries {
                    d.record_n(v, c).map_err(|e| HistogramError::Merge(format!("{e:?}")))?;
                }
            }
            (Repr::Sparse { entries, total }, Repr::Sparse { entries: theirs, total: their_total }) => {
                *entries = merge_entries(entries, theirs);
                *total += their_total;
                if entries.len() > DENSE_AT {
                    self.densify();
                }
            }
            (Repr::Sparse { .. }, Repr::Dense(o)) => {
                self.densify().add(o.as_ref()).map_err(|e| HistogramError::Merge(format!("{e:?}")))?;
            }
        }
        Ok(())
    }

    /// Encode as HdrHistogram V2 (uncompressed) bytes; an empty histogram
    /// encodes as no bytes at all (which [`Self::decode`] reads back as empty).
    pub fn encode(&self) -> Vec<u8> {
        let owned;
        let d = match &self.repr {
            Repr::Empty => return Vec::new(),
            Repr::Dense(d) => d.as_ref(),
            Repr::Sparse { .. } => {
                owned = self.to_hdr();
                &owned
            }
        };
        let mut buf = Vec::with_capacity(64);
        // Serializing into a Vec cannot fail for a histogram with valid bounds.
        if let Err(e) = V2Serializer::new().serialize(d, &mut buf) {
            tracing::error!(error = ?e, "histogram serialization failed");
            buf.clear();
        }
        buf
    }

    /// Decode V2 bytes, refusing a histogram whose precision or lowest value
    /// differ from ours (its highest may be smaller: the buckets are the
    /// same). Saturation counts do not travel (V2 has no field for them).
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        // Small uncompressed V2 encodings (an interval's few samples) are
        // read into sparse entries; large or compressed ones go through the
        // full deserializer into a dense histogram (its native path is the
        // fastest way to fill a counts array).
        match decode_sparse(bytes) {
            Some(Err(e)) => return Err(e),
            Some(Ok(entries)) if entries.len() <= DENSE_AT => {
                let total = entries.iter().map(|e| e.1).sum();
                let repr = if total == 0 { Repr::Empty } else { Repr::Sparse { entries, total } };
                return Ok(Self { repr, saturated: 0 });
            }
            _ => {}
        }
        let decoded: Histogram<u64> =
            Deserializer::new().deserialize(&mut &bytes[..]).map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
        if decoded.low() != LOWEST_US || decoded.sigfig() != SIGNIFICANT_DIGITS {
            return Err(HistogramError::Bounds { low: decoded.low(), high: decoded.high(), sigfig: decoded.sigfig() });
        }
        if decoded.high() == HIGHEST_US {
            // Our own bounds: use it as it is.
            return Ok(Self { repr: Repr::Dense(Box::new(decoded)), saturated: 0 });
        }
        // Another highest value but our lowest and precision: adding it into
        // a standard histogram gives the standard bounds.
        let mut d = dense();
        d.add(&decoded).map_err(|e: hdrhistogram::AdditionError| HistogramError::Merge(format!("{e:?}")))?;
        Ok(Self { repr: Repr::Dense(d), saturated: 0 })
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Sparse { total, .. } => *total,
            Repr::Dense(d) => d.len(),
        }
    }

    /// Samples that were above [`HIGHEST_US`] and clamped.
    pub fn saturated(&self) -> u64 {
        self.saturated
    }

    /// Values at ascending quantiles `qs` (each 0.0..=1.0) in microseconds,
    /// in one pass; 0 for each when empty. HdrHistogram's own rule: the
    /// highest value equivalent to the bucket where the count reaches
    /// `ceil(q * total)` (at least 1), the lowest for q = 0.
    fn quantiles_us<const N: usize>(&self, qs: [f64; N]) -> [u64; N] {
        let mut out = [0; N];
        match &self.repr {
            Repr::Empty => {}
            Repr::Dense(d) => {
                if !d.is_empty() {
                    for (o, q) in out.iter_mut().zip(qs) {
                        *o = d.value_at_quantile(q);
                    }
                }
            }
            Repr::Sparse { entries, total } => {
                let b = buckets();
                let mut cumulative = 0u64;
                let mut it = entries.iter();
                let mut current: Option<&(u64, u64)> = None;
                for (o, q) in out.iter_mut().zip(qs) {
                    let q = q.min(1.0);
                    let target = ((q * *total as f64).ceil() as u64).max(1);
                    while cumulative < target {
                        let Some(e) = it.next() else { break };
                        cumulative += e.1;
                        current = Some(e);
                    }
                    if let Some(&(v, _)) = current {
                        *o = if q == 0.0 { b.lowest_equivalent(v) } else { b.highest_equivalent(v) };
                    }
                }
            }
        }
        out
    }

    /// Value at quantile `q` (0.0..=1.0) in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.quantiles_us([q])[0]
    }

    /// Largest recorded value in microseconds (0 when empty).
    pub fn max_us(&self) -> u64 {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Sparse { entries, .. } => entries.last().map_or(0, |e| buckets().highest_equivalent(e.0)),
            Repr::Dense(d) => {
                if d.is_empty() {
                    0
                } else {
                    d.max()
                }
            }
        }
    }

    /// Smallest recorded value in microseconds (0 when empty).
    pub fn min_us(&self) -> u64 {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Sparse { entries, .. } => entries.first().map_or(0, |e| e.0),
            Repr::Dense(d) => {
                if d.is_empty() {
                    0
                } else {
                    d.min()
                }
            }
        }
    }

    /// Mean in microseconds (0 when empty), summed in HdrHistogram's order.
    pub fn mean_us(&self) -> f64 {
        match &self.repr {
            Repr::Empty => 0.0,
            Repr::Sparse { entries, total } => {
                let b = buckets();
                let total = *total as f64;
                entries.iter().fold(0.0f64, |sum, &(v, c)| sum + b.median_equivalent(v) as f64 * c as f64 / total)
            }
            Repr::Dense(d) => {
                if d.is_empty() {
                    0.0
                } else {
                    d.mean()
                }
            }
        }
    }

    /// Forget every sample (a dense histogram keeps its allocation).
    pub fn reset(&mut self) {
        match &mut self.repr {
            Repr::Dense(d) => d.reset(),
            _ => self.repr = Repr::Empty,
        }
        self.saturated = 0;
    }

    /// The percentiles the reports show.
    pub fn summary(&self) -> LatencySummary {
        let [p50_us, p90_us, p99_us, p999_us] = self.quantiles_us([0.50, 0.90, 0.99, 0.999]);
        LatencySummary {
            count: self.count(),
            min_us: self.min_us(),
            mean_us: self.mean_us(),
            p50_us,
            p90_us,
            p99_us,
            p999_us,
            max_us: self.max_us(),
        }
    }

    /// A dense HdrHistogram with the same samples (for writers that walk
    /// its buckets, such as the interval log).
    pub fn to_hdr(&self) -> Histogram<u64> {
        match &self.repr {
            Repr::Dense(d) => d.as_ref().clone(),
            _ => {
                let mut copy = self.clone();
                copy.densify();
                match copy.repr {
                    Repr::Dense(d) => *d,
                    _ => *dense(),
                }
            }
        }
    }
}

/// Percentiles of one latency histogram, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of latencies from 1 µs to minutes (xorshift, no rand crate).
    pub(super) fn samples(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Log-uniform-ish: pick a magnitude, then a value inside it.
                let mag = x % 9; // 10^0 .. 10^8 µs
                1 + (x >> 8) % 10u64.pow(mag as u32 + 1)
            })
            .collect()
    }

    #[test]
    fn encode_decode_merge_equals_recording_everything_in_one() {
        let mut all = LatencyHistogram::new();
        let mut merged = LatencyHistogram::new();
        for agent in 0..7u64 {
            let mut h = LatencyHistogram::new();
            for us in samples(agent * 7919 + 1, 5_000 + agent as usize * 311) {
                h.record_us(us);
                all.record_us(us);
            }
            let bytes = h.encode();
            let back = LatencyHistogram::decode(&bytes).expect("decode");
            assert_eq!(back.count(), h.count());
            merged.merge(&back).expect("merge");
        }
        assert_eq!(merged.count(), all.count());
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(merged.quantile_us(q), all.quantile_us(q), "quantile {q}");
        }
        assert_eq!(merged.max_us(), all.max_us());
        assert_eq!(merged.min_us(), all.min_us());
        assert!((merged.mean_us() - all.mean_us()).abs() < 1e-6);
        assert_eq!(merged.summary(), all.summary());
    }

    #[test]
    fn empty_histograms_round_trip() {
        let h = LatencyHistogram::new();
        let back = LatencyHistogram::decode(&h.encode()).expect("decode empty");
        assert_eq!(back.count(), 0);
        assert_eq!(back.summary(), LatencySummary::default());
        assert_eq!(LatencyHistogram::decode(&[]).expect("no bytes").count(), 0);
    }

    #[test]
    fn refuses_garbage_and_foreign_bounds() {
        assert!(matches!(LatencyHistogram::decode(b"not a histogram"), Err(HistogramError::Decode(_))));
        let mut foreign = Histogram::<u64>::new_with_bounds(1, 1_000_000, 2).expect("bounds");
        foreign.record(10).expect("record");
        let mut buf = Vec::new();
        V2Serializer::new().serialize(&foreign, &mut buf).expect("serialize");
        assert!(matches!(LatencyHistogram::decode(&buf), Err(HistogramError::Bounds { sigfig: 2, .. })));
    }

    #[test]
    fn nothing_is_allocated_for_an_empty_histogram() {
        let mut h = LatencyHistogram::new();
        assert!(matches!(h.repr, Repr::Empty) && h.encode().is_empty());
        h.merge(&LatencyHistogram::new()).expect("merge empty");
        assert!(matches!(h.repr, Repr::Empty));
        h.record_us(5);
        h.reset();
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn out_of_range_values_are_clamped_and_counted() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_secs(7200));
        h.record(Duration::ZERO);
        assert_eq!(h.count(), 2);
        assert_eq!(h.saturated(), 1);
        assert_eq!(h.min_us(), 1);
        assert!(h.max_us() >= HIGHEST_US);
    }
}
