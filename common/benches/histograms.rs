//! Micro-benchmarks of the histogram path (`cargo bench -p loadgen-common`):
//! recording one sample, and encoding, decoding and merging 64 agents'
//! histograms (target: the whole merge under 5 ms). Plain `std::time`, no
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

    // 64 agents, 10,000 samples each: encode each, then decode and merge all.
    let agents: Vec<LatencyHistogram> = (0..64u64)
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
    let mut bytes = 0;
    for _ in 0..21 {
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
        assert_eq!(merged.count(), 640_000);
    }
    let (enc, dec_merge) = (median(enc), median(dec_merge));
    println!("encode 64 agents' histograms: {:.2} ms ({} KiB on the wire)", enc.as_secs_f64() * 1e3, bytes / 1024);
    println!("decode + merge 64 agents' histograms: {:.2} ms", dec_merge.as_secs_f64() * 1e3);
    println!("whole merge (encode + decode + merge): {:.2} ms (target < 5 ms)", (enc + dec_merge).as_secs_f64() * 1e3);
}
