//! The text of `coordinator bench`: both tools side by side per setting,
//! then (on in-memory SQLite) the open-loop ceiling search.

use std::io::{self, Write};

use crate::bench::ceiling::Ceiling;
use crate::bench::{BenchReport, Sample, median};
use crate::report::view::{fmt_ms, latency_line};

/// The comparison table, the ceiling and the verdict.
pub fn render(r: &BenchReport, w: &mut dyn Write) -> io::Result<()> {
    let postgres = r.provider == "postgres";
    writeln!(
        w,
        "\nSide by side on {}, {} ({} run(s) per tool and setting; min / median / max):",
        r.provider, r.workload, r.repeat
    )?;
    let mut head = format!(
        "{:<8} {:<26} {:>24} {:>14} {:>24} {:>10}",
        "setting", "tool", "orch/s", "orch/s ratio", "CPU s per 1,000 orch", "CPU ratio"
    );
    if postgres {
        head.push_str(&format!(" {:>20} {:>14}", "commits/orch", "commits ratio"));
    }
    writeln!(w, "{head}")?;
    let spread = |v: &[Sample], f: fn(&Sample) -> f64| {
        let xs: Vec<f64> = v.iter().map(f).collect();
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{min:.2} / {:.2} / {max:.2}", median(xs.clone()))
    };
    for c in &r.comparisons {
        let mut theirs = format!(
            "{:<8} {:<26} {:>24} {:>14} {:>24} {:>10}",
            c.dispatchers,
            "duroxide stress module",
            spread(&c.theirs, |s| s.orch_per_sec),
            "",
            spread(&c.theirs, |s| s.cpu_per_1000),
            ""
        );
        let mut ours = format!(
            "{:<8} {:<26} {:>24} {:>14} {:>24} {:>10}",
            "",
            "loadgen (1 agent)",
            spread(&c.ours, |s| s.orch_per_sec),
            format!("x{:.2}", c.throughput_ratio),
            spread(&c.ours, |s| s.cpu_per_1000),
            format!("x{:.2}", c.cpu_ratio)
        );
        if postgres {
            theirs.push_str(&format!(" {:>20}", spread(&c.theirs, |s| s.commits_per_orchestration)));
            ours.push_str(&format!(
                " {:>20} {:>14}",
                spread(&c.ours, |s| s.commits_per_orchestration),
                format!("x{:.2}", c.commits_ratio)
            ));
        }
        writeln!(w, "{theirs}\n{ours}")?;
    }
    let judged: Vec<String> = r
        .comparisons
        .iter()
        .map(|c| match c.throughput_interval {
            Some([low, high]) => format!(
                "{} x{:.2} [{low:.2}, {high:.2}] {}",
                c.dispatchers,
                c.throughput_ratio,
                c.throughput_verdict.as_str()
            ),
            None => format!("{} x{:.2} (too few runs for an interval)", c.dispatchers, c.throughput_ratio),
        })
        .collect();
    writeln!(w, "orch/s ratio with its 95% bootstrap interval, judged as `ab` judges: {}.", judged.join("; "))?;
    writeln!(
        w,
        "CPU: user + system seconds of the process that ran the runtime (the stress module's own, the agent's), from /proc."
    )?;
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
    if let Some(c) = &r.ceiling {
        render_ceiling(c, w)?;
    }
    for p in &r.problems {
        writeln!(w, "  [FAIL] {p}")?;
    }
    writeln!(w, "Bench: {}", if r.passed { "PASSED" } else { "FAILED" })
}

fn render_ceiling(c: &Ceiling, w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "\nOpen-loop ceiling of one agent on {} at {} (held: under {}% of starts late by more than {}ms, none dropped, completions within 90% of the rate, every instance as expected):",
        c.provider,
        c.dispatchers,
        c.late_limit_pct,
        loadgen_common::tally::LATE_AFTER_MS
    )?;
    writeln!(
        w,
        "{:>10} {:>10} {:>8} {:>14} {:>30} {:>12}  result",
        "rate/s", "orch/s", "starts", "late", "start lateness p50 / p99 / max", "agent CPU s"
    )?;
    for s in &c.steps {
        let lateness = s
            .lateness
            .as_ref()
            .map_or("-".to_string(), |l| format!("{} / {} / {}", fmt_ms(l.p50_us), fmt_ms(l.p99_us), fmt_ms(l.max_us)));
        writeln!(
            w,
            "{:>10} {:>10.1} {:>8} {:>14} {:>30} {:>12.2}  {}",
            s.rate,
            s.achieved_orch_per_sec,
            s.launched,
            format!("{} ({:.2}%)", s.late, s.late_pct),
            lateness,
            s.agent_cpu_s,
            if s.held { "held".to_string() } else { format!("not held: {}", s.why_not) }
        )?;
    }
    match (c.held_rate, &c.lateness) {
        (Some(rate), Some(l)) => {
            writeln!(w, "Highest rate held: {rate}/s; its start lateness ({} starts): {}.", l.count, latency_line(l))
        }
        (Some(rate), None) => writeln!(w, "Highest rate held: {rate}/s."),
        (None, _) => writeln!(w, "No rate tried was held."),
    }?;
    writeln!(w, "Limited by {}.", c.limited_by())
}
