//! `--abort-on-fail`: a run whose gate is lost stops within seconds, exits
//! 1 naming the gate and when, and still writes its result in full.

use std::time::{Duration, Instant};

use super::support::{self, coordinator, read_report};

#[test]
fn an_impossible_p99_gate_stops_a_60_s_run_within_seconds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("run.json");
    let report = tmp.path().join("run.html");
    let started = Instant::now();
    let out = coordinator(tmp.path())
        .args(["--local", "2", "--profile", "light", "--duration", "60s", "--p99-ms", "0.001", "--abort-on-fail"])
        .args(["--live", "line", "--json"])
        .arg(&json)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("coordinator");
    let took = started.elapsed();
    let text = support::show(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    // Set-up (a throwaway cluster, two agents) plus a 10 s window to fill,
    // then the drain: far short of the 60 s asked for.
    assert!(took < Duration::from_secs(45), "took {took:?}: {text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--abort-on-fail: the p99 latency gate was lost at"), "{text}");
    let r = read_report(&json);
    let a = r.aborted.as_ref().expect("marked aborted");
    assert_eq!(a.gate, "p99 latency");
    assert!(a.at_s > 0.0 && a.at_s < 20.0, "{a:?}");
    assert!(r.merged.elapsed_s < 40.0, "the agents kept going: {}", r.merged.elapsed_s);
    let gate = r.gates.iter().find(|g| g.name == "abort on fail").expect("the abort gate");
    assert!(!gate.passed && gate.value.contains("p99 latency"), "{gate:?}");
    // The result is whole: the audit ran, and the orchestrations it started ended.
    assert!(r.merged.counts.completed > 0 && r.audit.instances > 0, "{:?}", r.merged.counts);
    assert!(std::fs::read_to_string(&report).expect("html").contains("abort on fail"));
    support::assert_nothing_left(tmp.path(), &["run.json", "run.html"]);
}
