//! What every renderer shows the same way, decided once: the line that says
//! what a run was asked to do, how latencies are written, and which latency
//! is the headline (that choice itself lives in the model:
//! [`crate::model::Section::headline_latency`]).

use loadgen_common::units::format_duration;

pub use loadgen_common::units::format_latency_us as fmt_ms;

use crate::model::{LatencySummary, RunReport, WorkloadReport};

/// The workload in one phrase: "fanout activity_delay=5ms tasks=3".
pub fn describe_workload(w: &WorkloadReport) -> String {
    let mut text = w.scenario.clone();
    for (k, v) in &w.options {
        text.push_str(&format!(" {k}={v}"));
    }
    text
}

/// One line that says what a run was asked to do.
pub fn describe_config(r: &RunReport) -> String {
    let p = &r.profile;
    let iterations = p.iterations.map_or(String::new(), |n| format!(", at most {n} orchestrations"));
    format!(
        "provider {}, {}{iterations}, {} of load, {}, dispatchers {} x {} runtime(s)/agent, poll {}, pool {}, db latency {}",
        r.provider.as_str(),
        p.load_phrase,
        format_duration(p.duration),
        describe_workload(&r.workload),
        p.dispatchers,
        p.runtimes_per_agent,
        format_duration(p.poll_interval),
        p.pool_max.map_or("default".into(), |n| n.to_string()),
        if p.db_latency.is_zero() { "none".into() } else { format_duration(p.db_latency) }
    )
}

/// p50 p90 p99 p99.9 max, right-aligned in 9 columns each.
pub fn latency_cells(l: &LatencySummary) -> String {
    format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9}",
        fmt_ms(l.p50_us),
        fmt_ms(l.p90_us),
        fmt_ms(l.p99_us),
        fmt_ms(l.p999_us),
        fmt_ms(l.max_us)
    )
}

/// "p50 12.0ms p90 20.2ms p99 30.1ms p99.9 40.0ms max 41.0ms".
pub fn latency_line(l: &LatencySummary) -> String {
    format!(
        "p50 {} p90 {} p99 {} p99.9 {} max {}",
        fmt_ms(l.p50_us),
        fmt_ms(l.p90_us),
        fmt_ms(l.p99_us),
        fmt_ms(l.p999_us),
        fmt_ms(l.max_us)
    )
}

/// "p50 12.0ms p99 30.1ms max 41.0ms".
pub fn latency_phrase(l: &LatencySummary) -> String {
    format!("p50 {} p99 {} max {}", fmt_ms(l.p50_us), fmt_ms(l.p99_us), fmt_ms(l.max_us))
}

/// A stage's span, `0-4.8s`: whole seconds without decimals.
pub fn stage_span(from_s: f64, to_s: f64) -> String {
    let secs = |x: f64| if (x - x.round()).abs() < 0.05 { format!("{x:.0}") } else { format!("{x:.1}") };
    format!("{}-{}s", secs(from_s), secs(to_s))
}
