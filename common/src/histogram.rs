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

/// A latency histogram in microseconds with the workspace-wide bounds.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
    saturated: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram with the standard bounds.
    pub fn new() -> Self {
        // The bounds are constants that `new_with_bounds` accepts (low >= 1,
        // high >= 2 * low, sigfig <= 5), so construction cannot fail.
        #[allow(clippy::expect_used)]
        let inner = Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self { inner, saturated: 0 }
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
        self.inner.saturating_record(us);
    }

    /// Add every sample of `other` into `self` (exact: the bounds are identical).
    pub fn merge(&mut self, other: &LatencyHistogram) -> Result<(), HistogramError> {
        self.inner.add(&other.inner).map_err(|e| HistogramError::Merge(format!("{e:?}")))?;
        self.saturated += other.saturated;
        Ok(())
    }

    /// Encode as HdrHistogram V2 (uncompressed) bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        // Serializing into a Vec cannot fail for a histogram with valid bounds.
        if let Err(e) = V2Serializer::new().serialize(&self.inner, &mut buf) {
            tracing::error!(error = ?e, "histogram serialization failed");
            buf.clear();
        }
        buf
    }

    /// Decode V2 bytes, refusing a histogram whose bounds differ from ours.
    /// Saturation counts do not travel (the V2 format has no field for them).
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        let decoded: Histogram<u64> =
            Deserializer::new().deserialize(&mut &bytes[..]).map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
        if decoded.low() != LOWEST_US || decoded.sigfig() != SIGNIFICANT_DIGITS {
            return Err(HistogramError::Bounds { low: decoded.low(), high: decoded.high(), sigfig: decoded.sigfig() });
        }
        if decoded.high() == HIGHEST_US {
            // Our own encoding: the bounds are already ours, use it as it is
            // (this halves the allocation and copying of a merge).
            return Ok(Self { inner: decoded, saturated: 0 });
        }
        // A foreign encoder with a smaller `high` but our low and precision:
        // adding it into a standard histogram gives the standard bounds.
        let mut hist = Self::new();
        hist.inner.add(&decoded).map_err(|e: hdrhistogram::AdditionError| HistogramError::Merge(format!("{e:?}")))?;
        Ok(hist)
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.inner.len()
    }

    /// Samples that were above [`HIGHEST_US`] and clamped.
    pub fn saturated(&self) -> u64 {
        self.saturated
    }

    /// Value at quantile `q` (0.0..=1.0) in microseconds; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.inner.is_empty() { 0 } else { self.inner.value_at_quantile(q) }
    }

    /// Largest recorded value in microseconds (0 when empty).
    pub fn max_us(&self) -> u64 {
        if self.inner.is_empty() { 0 } else { self.inner.max() }
    }

    /// Smallest recorded value in microseconds (0 when empty).
    pub fn min_us(&self) -> u64 {
        if self.inner.is_empty() { 0 } else { self.inner.min() }
    }

    /// Mean in microseconds (0 when empty).
    pub fn mean_us(&self) -> f64 {
        if self.inner.is_empty() { 0.0 } else { self.inner.mean() }
    }

    /// Forget every sample (keeps the bounds).
    pub fn reset(&mut self) {
        self.inner.reset();
        self.saturated = 0;
    }

    /// The percentiles the reports show.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count(),
            min_us: self.min_us(),
            mean_us: self.mean_us(),
            p50_us: self.quantile_us(0.50),
            p90_us: self.quantile_us(0.90),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: self.max_us(),
        }
    }

    /// Borrow the underlying histogram (for renderers that walk its buckets).
    pub fn as_hdr(&self) -> &Histogram<u64> {
        &self.inner
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
    fn samples(seed: u64, n: usize) -> Vec<u64> {
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
