//! Open loop: below capacity the schedule is kept and latency stays at the
//! service time; above it the backlog grows and so does the latency measured
//! from each start's intended time (no coordinated omission). Also checks the
//! per-second series, the database timeline and the `.hlog` interval logs
//! (read back by an independent HdrHistogram implementation, HdrHistogram_py).

use crate::support;

use std::process::Command;

use crate::support::{read_report, run_ok};
use loadgen_coordinator::model::RunReport;

fn open_loop_run(tmp: &std::path::Path, name: &str, rate: &str, duration: &str) -> RunReport {
    let json = tmp.join(format!("{name}.json"));
    let hlogs = tmp.join(format!("{name}-hlog"));
    std::fs::create_dir_all(&hlogs).expect("hlog dir");
    run_ok(
        tmp,
        &[
            "--local",
            "1",
            "--profile",
            "light",
            "--rate",
            rate,
            "--duration",
            duration,
            "--hlog-dir",
            &hlogs.display().to_string(),
            "--json",
            &json.display().to_string(),
        ],
    );
    read_report(&json)
}

/// What HdrHistogram_py reads from an .hlog: total count, p99 and max of all
/// intervals added together, and each interval's count.
fn read_hlog(path: &std::path::Path) -> (u64, u64, u64, Vec<u64>) {
    let script = r#"
import sys
from hdrh.log import HistogramLogReader
from hdrh.histogram import HdrHistogram
ref = HdrHistogram(1, 3600 * 1000 * 1000, 3)
acc = HdrHistogram(1, 3600 * 1000 * 1000, 3)
reader = HistogramLogReader(sys.argv[1], ref)
counts = []
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    counts.append(h.get_total_count())
    acc.add(h)
print(acc.get_total_count(), acc.get_value_at_percentile(99), acc.get_max_value(), *counts)
"#;
    let out = Command::new("python3").args(["-c", script]).arg(path).output().expect("python3");
    assert!(
        out.status.success(),
        "HdrHistogram_py (pip install hdrhistogram): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text.split_whitespace().map(|t| t.parse().expect("number")).collect();
    (v[0], v[1], v[2], v[3..].to_vec())
}

#[test]
fn latency_from_the_intended_start_grows_with_the_backlog_above_capacity() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Below capacity (one agent at 2:2 completes ~30 orch/s here).
    let below = open_loop_run(tmp.path(), "below", "8/s", "6s");
    // Well above it.
    let above = open_loop_run(tmp.path(), "above", "90/s", "5s");

    for r in [&below, &above] {
        let m = &r.merged;
        let i = m.intended_latency.as_ref().expect("open loop reports latency from the intended start");
        assert_eq!(m.counts.completed, m.counts.launched);
        assert_eq!(i.count, m.counts.completed);
        assert!(r.audit.passed(), "{:?}", r.audit.problems);
        // From the intended start is never shorter than from the start call.
        assert!(i.p50_us >= m.e2e_latency.p50_us && i.max_us >= m.e2e_latency.max_us, "{i:?} vs {:?}", m.e2e_latency);
        assert_eq!(m.counts.dropped, 0);
        // Every start's lateness (actual minus intended start) is its own
        // histogram, and the late count is the share of it above the limit.
        let l = m.start_lateness.as_ref().expect("open loop reports start lateness");
        assert_eq!(l.count, m.counts.launched, "{l:?}");
        let limit_us = loadgen_common::tally::LATE_AFTER_MS * 1000;
        assert!(m.counts.late == 0 || l.max_us > limit_us, "{l:?} with {} late", m.counts.late);
        assert!(m.counts.late < m.counts.launched || l.p50_us >= limit_us, "{l:?}");
    }
    // The schedule was kept: about rate x duration starts.
    let launched = |r: &RunReport| r.merged.counts.launched as f64;
    assert!((launched(&below) - 48.0).abs() <= 3.0, "below: {}", launched(&below));
    assert!((launched(&above) - 450.0).abs() <= 10.0, "above: {}", launched(&above));
    // An unloaded schedule keeps time (a little slack for a busy CI machine).
    assert!(below.merged.counts.late * 10 <= below.merged.counts.launched, "{:?}", below.merged.counts);

    let p99 = |r: &RunReport| r.merged.intended_latency.as_ref().map_or(0, |l| l.p99_us);
    assert!(p99(&above) > 3 * p99(&below), "above capacity p99 {} vs below {}", p99(&above), p99(&below));
    // The latency grows over the run as the backlog builds: the last full
    // second of starts waits far longer than the first.
    let series = &above.timeline.merged;
    assert!(series.len() >= 5, "{series:?}");
    let first = series.iter().find(|p| p.completed > 0).expect("a second with completions");
    let last = series.iter().rev().find(|p| p.completed > 0).expect("a second with completions");
    assert!(last.p50_ms > 3.0 * first.p50_ms, "first {first:?}, last {last:?}");
    // Below capacity the series is flat by comparison.
    assert!(below.timeline.merged.iter().all(|p| p.p99_ms < p99(&above) as f64 / 1000.0));

    // The database timeline saw the backlog in duroxide's orchestrator queue,
    // and the database working.
    let db = &above.db_timeline;
    assert!(db.len() >= 4, "{db:?}");
    assert!(db.iter().any(|s| s.commits_per_sec > 0.0));
    assert!(db.iter().all(|s| !s.connections.is_empty()));
    let peak_queue = db.iter().map(|s| s.orchestrator_queue + s.worker_queue).max().unwrap_or(0);
    let below_queue = below.db_timeline.iter().map(|s| s.orchestrator_queue + s.worker_queue).max().unwrap_or(0);
    assert!(peak_queue > 20 && peak_queue > 3 * below_queue.max(1), "queues: above {peak_queue}, below {below_queue}");

    // The interval logs, read by an independent implementation, hold exactly
    // the merged histogram's samples.
    for (r, name) in [(&below, "below"), (&above, "above")] {
        let merged = tmp.path().join(format!("{name}-hlog")).join(format!("{}-merged.hlog", r.run_id));
        let (count, p99_us, max_us, intervals) = read_hlog(&merged);
        let i = r.merged.intended_latency.as_ref().expect("intended");
        assert_eq!((count, max_us), (i.count, i.max_us), "{name}");
        // Percentiles are not compared exactly: HdrHistogram_py rounds the
        // percentile's rank to the nearest sample, the Rust crate rounds up.
        assert!(p99_us > 0 && p99_us <= max_us, "{name}: p99 {p99_us}");
        // Every interval holds exactly that second's completions.
        let per_second: Vec<u64> = r.timeline.merged.iter().map(|p| p.completed).collect();
        assert_eq!(intervals, per_second, "{name}");
        let agent = tmp.path().join(format!("{name}-hlog")).join(format!("{}-agent0.hlog", r.run_id));
        let (agent_count, _, agent_max, _) = read_hlog(&agent);
        assert_eq!(agent_count, r.agents[0].section.counts.completed);
        assert_eq!(agent_max, r.agents[0].section.headline_latency().max_us);
    }
}

#[test]
fn rate_input_is_checked() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (args, needle) in [
        (&["--local", "1", "--rate", "fast"][..], "rate"),
        (&["--local", "1", "--rate", "-5/s"], "rate"),
        (&["--local", "1", "--rate", "10/week"], "N/s"),
        (&["--local", "1", "--rate", "10/s", "--arrival", "bursty"], "poisson"),
        (&["--local", "1", "--rate", "10/s", "--max-in-flight", "0"], "max_in_flight"),
        (&["--local", "1", "--arrival", "poisson"], "--arrival needs --rate"),
        (&["--local", "1", "--max-in-flight", "10"], "--max-in-flight needs --rate"),
        (&["--local", "1", "--rate", "10/s", "--hlog-dir", "/proc/no-such-dir/hlogs"], "--hlog-dir"),
    ] {
        let out = support::coordinator(tmp.path()).args(args).output().expect("coordinator");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", support::show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    support::assert_nothing_left(tmp.path(), &[]);
}

#[test]
fn starts_over_the_in_flight_cap_are_dropped_counted_and_fail_the_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("capped.json");
    let out = support::coordinator(tmp.path())
        .args(["--local", "1", "--profile", "light", "--rate", "60/s", "--max-in-flight", "5", "--duration", "3s"])
        .args(["--json", &json.display().to_string()])
        .output()
        .expect("coordinator");
    assert_eq!(out.status.code(), Some(1), "dropped starts fail a gate: {}", support::show(&out));
    let r = read_report(&json);
    let c = &r.merged.counts;
    // 180 starts were due, each issued or dropped; at most 5 were ever in flight.
    assert!(c.dropped > 50, "{c:?}");
    assert_eq!(c.launched + c.dropped, 180, "{c:?}");
    assert_eq!(c.completed, c.launched, "what was started completed");
    assert!(r.timeline.merged.iter().all(|p| p.in_flight <= 5), "{:?}", r.timeline.merged);
    let gate = r.gates.iter().find(|g| g.name == "dropped starts").expect("the dropped-starts gate");
    assert!(!gate.passed && gate.value.starts_with(&format!("{} dropped", c.dropped)), "{gate:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dropped (in-flight cap 5 reached)"),
        "{}",
        support::show(&out)
    );
}

/// Every start the schedule offers before the deadline is issued (late when
/// the agent could not keep up) or counted dropped, never lost: an agent
/// frozen across the deadline wakes up to both its overdue starts and the
/// deadline at once, and still issues every start that fell due before it.
#[test]
fn an_agent_frozen_across_the_deadline_still_issues_every_start_due_before_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("frozen.json");
    let faults = tmp.path().join("faults.toml");
    std::fs::write(&faults, "[[fault]]\nkind = \"freeze-agent\"\nat = \"3s\"\nduration = \"2s\"\nagent = 0\n")
        .expect("write faults");
    let out = support::coordinator(tmp.path())
        .args(["--local", "2", "--profile", "light", "--rate", "20/s", "--duration", "5s"])
        .args(["--faults", &faults.display().to_string(), "--json", &json.display().to_string()])
        .output()
        .expect("coordinator");
    let r = read_report(&json);
    let c = &r.merged.counts;
    // A planned freeze is not a lost agent: the run passes.
    assert!(out.status.success() && r.lost_agents.is_empty(), "{}", support::show(&out));
    // 10/s for 5 s per agent; agent 0 was stopped for the last 2 s of it.
    assert_eq!(c.launched + c.dropped, 100, "{c:?}\n{}", support::show(&out));
    let frozen = r.agents.iter().find(|a| a.index == 0).expect("agent 0");
    assert!(
        frozen.section.counts.late >= 15,
        "the starts due while frozen were issued late: {:?}",
        frozen.section.counts
    );
    assert_eq!(c.completed, c.launched, "{c:?}");
    std::fs::remove_file(&faults).expect("faults");
    support::assert_nothing_left(tmp.path(), &["frozen.json"]);
}
