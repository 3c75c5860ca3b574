//! The sparse side of [`super::LatencyHistogram`]: reading an uncompressed
//! HdrHistogram V2 encoding straight into (value, count) entries, without
//! the dense counts array, and merging entry lists.

use super::{DENSE_AT, HIGHEST_US, HistogramError, LOWEST_US, SIGNIFICANT_DIGITS};

/// Sub-buckets in each half bucket for 3 significant digits (2,048 per bucket).
const HALF_BUCKET_MAGNITUDE: u32 = 10;

/// The lowest value of counts-array index `index` for our bounds (low 1, so
/// no unit magnitude): HdrHistogram's own index layout.
pub(super) fn value_for(index: usize) -> Option<u64> {
    let half = 1usize << HALF_BUCKET_MAGNITUDE;
    let bucket = (index >> HALF_BUCKET_MAGNITUDE) as i64 - 1;
    let sub = ((index & (half - 1)) + half) as u64;
    if bucket < 0 {
        return Some(sub - half as u64);
    }
    let shift = u32::try_from(bucket).ok().filter(|b| *b < 53)?;
    Some(sub << shift)
}

/// Cookie of an uncompressed V2 encoding.
const V2_COOKIE: u32 = 0x1c84_9313;

/// Decode an uncompressed V2 encoding with our precision into sparse
/// entries, never allocating the dense counts array. `None`: not something
/// this fast path reads (the full deserializer then decides).
pub(super) fn decode_sparse(bytes: &[u8]) -> Option<Result<Vec<(u64, u64)>, HistogramError>> {
    let be32 = |at: usize| bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
    let be64 = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    // Header: cookie, payload length, normalizing offset, significant
    // digits (4 bytes each), lowest, highest, integer-to-double ratio (8 each).
    if be32(0)? != V2_COOKIE || be32(8)? != 0 || be64(32)? != 1.0f64.to_bits() {
        return None;
    }
    let (sigfig, low, high) = (be32(12)?, be64(16)?, be64(24)?);
    if low != LOWEST_US || sigfig != u32::from(SIGNIFICANT_DIGITS) {
        let sigfig = u8::try_from(sigfig).unwrap_or(u8::MAX);
        return Some(Err(HistogramError::Bounds { low, high, sigfig }));
    }
    let len = be32(4)? as usize;
    // Every non-zero bucket takes at least a byte: a payload this long is
    // a dense histogram's work.
    if len > 2 * DENSE_AT {
        return None;
    }
    let payload = bytes.get(40..40 + len)?;
    let bad = |what: &str| Some(Err(HistogramError::Decode(what.to_string())));
    let (mut at, mut index, mut entries) = (0usize, 0usize, Vec::new());
    while at < payload.len() {
        // LEB128, at most nine bytes (the ninth keeps all eight of its bits).
        let mut zz = 0u64;
        let mut n = 0;
        loop {
            let Some(&b) = payload.get(at + n) else { return bad("truncated varint") };
            if n == 8 {
                zz |= u64::from(b) << 56;
                n += 1;
                break;
            }
            zz |= u64::from(b & 0x7f) << (7 * n);
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        at += n;
        let v = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        if v < 0 {
            index = index.saturating_add(v.unsigned_abs() as usize);
            continue;
        }
        if v > 0 {
            let Some(value) = value_for(index) else { return bad("index beyond the value range") };
            if value > HIGHEST_US {
                return Some(Err(HistogramError::Merge(format!("a value of {value} us is beyond the 1 h bound"))));
            }
            entries.push((value, v as u64));
        }
        index += 1;
    }
    Some(Ok(entries))
}

/// Merge two ascending entry lists.
pub(super) fn merge_entries(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::Deserializer;

    use super::super::tests::samples;
    use super::super::{LatencyHistogram, LatencySummary, Repr, buckets};
    use super::*;

    /// Every statistic of `h` as a comparable tuple.
    fn stats(h: &LatencyHistogram) -> (LatencySummary, Vec<u64>, u64) {
        let qs = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0, 1.5];
        (h.summary(), qs.iter().map(|q| h.quantile_us(*q)).collect(), h.mean_us().to_bits())
    }

    #[test]
    fn sparse_and_dense_give_identical_figures() {
        for (seed, n) in [(3u64, 1usize), (5, 40), (11, 900), (17, 20_000)] {
            let mut dense = LatencyHistogram::new();
            for us in samples(seed, n) {
                dense.record_us(us);
            }
            assert!(matches!(dense.repr, Repr::Dense(_)));
            let decoded = LatencyHistogram::decode(&dense.encode()).expect("decode");
            if n < 1000 {
                assert!(matches!(decoded.repr, Repr::Sparse { .. }), "{n} samples stay sparse");
            }
            assert_eq!(stats(&decoded), stats(&dense), "{n} samples");
            // The standard deserializer reads the same buckets.
            let theirs: Histogram<u64> = Deserializer::new().deserialize(&mut &dense.encode()[..]).expect("hdr");
            let mine = decoded.to_hdr();
            let buckets = |h: &Histogram<u64>| {
                h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect::<Vec<_>>()
            };
            assert_eq!(buckets(&mine), buckets(&theirs));
            // Merging in every combination of representations agrees.
            let mut a = decoded.clone();
            a.merge(&decoded).expect("sparse + sparse");
            let mut b = dense.clone();
            b.merge(&decoded).expect("dense + sparse");
            let mut c = decoded.clone();
            c.merge(&dense).expect("sparse + dense");
            let mut d = LatencyHistogram::new();
            d.merge(&dense).expect("empty + dense");
            d.merge(&dense).expect("dense + dense");
            for h in [&a, &b, &c] {
                assert_eq!(stats(h), stats(&d), "{n} samples merged twice");
            }
        }
    }

    #[test]
    fn index_layout_matches_hdrhistogram() {
        let b = buckets();
        for us in samples(23, 5_000).into_iter().chain([1, 2047, 2048, 2049, 4096, HIGHEST_US]) {
            let mut h = LatencyHistogram::new();
            h.record_us(us);
            let sparse = LatencyHistogram::decode(&h.encode()).expect("decode");
            let Repr::Sparse { entries, .. } = &sparse.repr else { panic!("sparse") };
            assert_eq!(entries, &vec![(b.lowest_equivalent(us), 1)], "{us}");
        }
    }
}
