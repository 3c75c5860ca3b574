//! Micro-benchmarks of the histogram path (`cargo bench -p loadgen-common`):
//! recording one sample, and encoding, decoding and merging 64 and 1,000
//! agents' histograms (targets: the whole merge of 64 under 5 ms, the final
//! merge of 1,000 under 50 ms). Plain `std::time`, no
//! framework: each figure is the median of repeated timed batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

use loadgen_common::histogram::LatencyHistogram;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Latencies like a run's: mostly 50-500 ms with a tail to seconds.
fn samples(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let base = 50_000 + x % 450_000;
            if x.is_multiple_of(100) { base * 10 } else { base }
        })
        .collect()
}

fn main() {
    // Recording one sample.
    let values = samples(7, 1_000_000);
    let mut rounds = Vec::new();
    for _ in 0..11 {
        let mut h = LatencyHistogram::new();
        let t = Instant::now();
        for &v in &values {
            h.record_us(black_box(v));
        }
        rounds.push(t.elapsed());
        black_box(h.count());
    }
    let per = median(rounds).as_nanos() as f64 / values.len() as f64;
    println!("record one sample: {per:.1} ns");

    // 64 and 1,000 agents, 10,000 samples each: encode each, then decode and
    // merge all (what the wire costs), and the in-memory merge alone (what the
    // coordinator's final merge does: intervals were decoded as they arrived).
    for n in [64u64, 1000] {
        merge_agents(n);
    }
}

fn merge_agents(n: u64) {
    let agents: Vec<LatencyHistogram> = (0..n)
        .map(|a| {
            let mut h = LatencyHistogram::new();
            for v in samples(a * 31 + 1, 10_000) {
                h.record_us(v);
            }
            h
        })
        .collect();
    let mut enc = Vec::new();
    let mut dec_merge = Vec::new();
    let mut merge_only = Vec::new();
    let mut bytes = 0;
    let rounds = if n > 100 { 7 } else { 21 };
    for _ in 0..rounds {
        let t = Instant::now();
        let encoded: Vec<Vec<u8>> = agents.iter().map(LatencyHistogram::encode).collect();
        enc.push(t.elapsed());
        bytes = encoded.iter().map(Vec::len).sum::<usize>();
        let t = Instant::now();
        let mut merged = LatencyHistogram::new();
        for b in &encoded {
            let h = LatencyHistogram::decode(black_box(b)).expect("decode");
            merged.merge(&h).expect("merge");
        }
        dec_merge.push(t.elapsed());
        assert_eq!(merged.count(), n * 10_000);
        let t = Instant::now();
        let mut merged = LatencyHistogram::new();
        for h in &agents {
            merged.merge(black_box(h)).expect("merge");
        }
        merge_only.push(t.elapsed());
        assert_eq!(merged.count(), n * 10_000);
    }
    let (enc, dec_merge, merge_only) = (median(enc), median(dec_merge), median(merge_only));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("encode {n} agents' histograms: {:.2} ms ({} KiB on the wire)", ms(enc), bytes / 1024);
    println!("decode + merge {n} agents' histograms: {:.2} ms", ms(dec_merge));
    println!("whole merge (encode + decode + merge) of {n} agents: {:.2} ms", ms(enc + dec_merge));
    println!(
        "final merge of {n} agents' decoded histograms (the coordinator's end-of-run merge): {:.2} ms (target for 1,000 agents < 50 ms)",
        ms(merge_only)
    );
}
