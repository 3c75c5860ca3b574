//! The text of `coordinator bench`: both tools side by side per setting.

use std::io::{self, Write};

use crate::bench::{BenchReport, Sample, median};

/// The comparison table.
pub fn render(r: &BenchReport, w: &mut dyn Write) -> io::Result<()> {
    writeln!(w, "\nSide by side, {} ({} run(s) per tool and setting; min / median / max):", r.workload, r.repeat)?;
    writeln!(
        w,
        "{:<8} {:<26} {:>26} {:>26} {:>14} {:>14}",
        "setting", "tool", "orch/s", "commits/orch", "orch/s ratio", "commits ratio"
    )?;
    let spread = |v: &[Sample], f: fn(&Sample) -> f64| {
        let xs: Vec<f64> = v.iter().map(f).collect();
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{min:.1} / {:.1} / {max:.1}", median(xs.clone()))
    };
    for c in &r.comparisons {
        writeln!(
            w,
            "{:<8} {:<26} {:>26} {:>26}",
            c.dispatchers,
            "duroxide stress module",
            spread(&c.theirs, |s| s.orch_per_sec),
            spread(&c.theirs, |s| s.commits_per_orchestration)
        )?;
        writeln!(
            w,
            "{:<8} {:<26} {:>26} {:>26} {:>14} {:>14}",
            "",
            "loadgen (1 agent)",
            spread(&c.ours, |s| s.orch_per_sec),
            spread(&c.ours, |s| s.commits_per_orchestration),
            format!("x{:.2}", c.throughput_ratio),
            format!("x{:.2}", c.commits_ratio)
        )?;
    }
    match r.min_throughput_ratio {
        Some(min) => {
            let missed: Vec<&str> =
                r.comparisons.iter().filter(|c| c.throughput_ratio < min).map(|c| c.dispatchers.as_str()).collect();
            if missed.is_empty() {
                writeln!(w, "Target orch/s ratio >= {min:.2} at every setting: met.")?;
            } else {
                writeln!(w, "Target orch/s ratio >= {min:.2} at every setting: MISSED at {}.", missed.join(", "))?;
            }
        }
        None => writeln!(w, "No throughput target set (--min-throughput-ratio makes one a gate).")?,
    }
    for p in &r.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    writeln!(w, "Bench: {}", if r.passed { "PASSED" } else { "FAILED" })
}
