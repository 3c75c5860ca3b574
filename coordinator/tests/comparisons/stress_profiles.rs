//! The stress tests users know from duroxide-pg's single-process tool, driving
//! the real coordinator and agents on a throwaway Postgres. The short ones run
//! in CI; the long ones are `#[ignore]`d and run with:
//!
//!   cargo nextest run --workspace --run-ignored ignored-only -E 'binary(comparisons) & test(/^stress_profiles::/)'

use crate::support;

use std::time::Duration;

use crate::support::{assert_consistent, assert_nothing_left, read_report, read_suite, run_ok};

fn json_arg(tmp: &tempfile::TempDir, name: &str) -> String {
    tmp.path().join(name).display().to_string()
}

#[test]
fn test_light_profile() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "light.json");
    run_ok(tmp.path(), &["--local", "2", "--profile", "light", "--json", &json]);
    let r = read_report(json.as_ref());
    assert_eq!(r.profile.name, "light");
    assert_consistent(&r, 2);
    assert_nothing_left(tmp.path(), &["light.json"]);
}

#[test]
fn test_standard_profile() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "standard.json");
    run_ok(tmp.path(), &["--local", "2", "--profile", "standard", "--json", &json]);
    let r = read_report(json.as_ref());
    assert_eq!((r.profile.in_flight(), r.workload.options["tasks"].as_str()), (20, "5"));
    assert_consistent(&r, 2);
    // Every agent sampled its memory about once a second.
    for a in &r.agents {
        assert!(a.memory.samples.len() >= 8, "agent {} sampled {} times", a.index, a.memory.samples.len());
        assert!(a.memory.peak_mb > 1.0);
    }
}

#[test]
fn test_high_concurrency() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "hc.json");
    run_ok(tmp.path(), &["--local", "2", "--profile", "high-concurrency", "--json", &json]);
    let r = read_report(json.as_ref());
    assert_eq!((r.profile.in_flight(), r.profile.dispatchers.to_string().as_str()), (50, "4:4"));
    assert!(r.merged.orch_per_sec >= 2.0, "{}", r.merged.orch_per_sec);
    assert_consistent(&r, 2);
}

#[test]
fn test_pool_limits() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "pool.json");
    run_ok(tmp.path(), &["--local", "2", "--profile", "pool-stress", "--json", &json]);
    let r = read_report(json.as_ref());
    // Each agent process ran its providers with a pool of 5, below its slice of 15.
    for a in &r.agents {
        assert_eq!(a.pool_max, 5, "agent {}", a.index);
        assert!(a.concurrency > u64::from(a.pool_max));
    }
    assert_consistent(&r, 2);
}

#[test]
fn test_high_latency_network() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "latency.json");
    run_ok(tmp.path(), &["--local", "1", "--profile", "high-latency", "--duration", "10s", "--json", &json]);
    let r = read_report(json.as_ref());
    assert_eq!(r.profile.db_latency, Duration::from_millis(50));
    // A start call is at least one round trip through the relay: 2 x 50 ms.
    assert!(r.merged.start_latency.min_us >= 100_000, "{:?}", r.merged.start_latency);
    assert!(r.merged.orch_per_sec >= 0.5, "{}", r.merged.orch_per_sec);
    assert_consistent(&r, 1);
    assert_nothing_left(tmp.path(), &["latency.json"]);
}

#[test]
fn test_suite_compares_dispatcher_combinations() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "suite.json");
    let out = run_ok(tmp.path(), &["--local", "1", "--profile", "suite", "--duration", "3s", "--json", &json]);
    let suite = read_suite(json.as_ref());
    let combos: Vec<String> = suite.runs.iter().map(|r| r.profile.dispatchers.to_string()).collect();
    assert_eq!(combos, ["1:1", "2:2", "4:4"]);
    // Each run had its own schema.
    let mut schemas: Vec<&str> = suite.runs.iter().map(|r| r.schema.as_str()).collect();
    schemas.dedup();
    assert_eq!(schemas.len(), 3);
    for r in &suite.runs {
        assert_consistent(r, 1);
    }
    assert!(suite.passed);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for header in ["Provider", "Config", "Completed", "Failed", "Infra", "App", "Success %", "Orch/sec", "Activity/sec"]
    {
        assert!(stdout.contains(header), "comparison table lacks {header}:\n{stdout}");
    }
    assert!(stdout.contains("Suite gates: PASSED"), "{stdout}");
}

#[test]
fn tracked_runs_warn_and_fail_on_regression() {
    let tmp = tempfile::tempdir().expect("tmp");
    let results = tmp.path().join("results");
    let results_arg = results.display().to_string();
    let base = ["--local", "1", "--profile", "light", "--duration", "3s", "--track", "--results-dir", &results_arg];
    let json1 = json_arg(&tmp, "first.json");
    let first = run_ok(tmp.path(), &[&base[..], &["--json", &json1]].concat());
    assert!(!String::from_utf8_lossy(&first.stdout).contains("Compared with"));
    // Much slower activities: the same profile at well under 80% of the throughput.
    let slow = [&base[..], &["--activity-delay", "400ms", "--fail-on-regression"]].concat();
    let out = support::coordinator(tmp.path()).args(&slow).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", support::show(&out));
    assert!(
        stdout.contains("REGRESSION")
            && stdout.contains("workload fanout activity_delay=5ms tasks=3 -> fanout activity_delay=400ms tasks=3"),
        "{stdout}"
    );
    let history = std::fs::read_to_string(results.join("history.jsonl")).expect("history");
    assert_eq!(history.lines().count(), 2);
    let md = std::fs::read_to_string(results.join("embedded.md")).expect("markdown results");
    assert_eq!(md.matches("\n## ").count(), 2, "{md}");
    assert!(md.contains("**regression**"), "{md}");
    // --baseline compares with a chosen result file instead (warning only here).
    let third = [
        &["--local", "1", "--profile", "light", "--duration", "3s", "--activity-delay", "400ms"][..],
        &["--baseline", &json1],
    ]
    .concat();
    let out = run_ok(tmp.path(), &third);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[warn] regression against baseline"), "{stdout}");
}

#[test]
#[ignore = "60 s of load; run with --run-ignored (see docs/testing.md)"]
fn test_production_profile() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "production.json");
    run_ok(tmp.path(), &["--local", "2", "--profile", "production", "--json", &json]);
    let r = read_report(json.as_ref());
    assert!(r.merged.counts.completed >= 180, "{}", r.merged.counts.completed);
    assert_consistent(&r, 2);
}

#[test]
#[ignore = "300 s of load; run with --run-ignored (see docs/testing.md)"]
fn test_long_duration_stability() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = json_arg(&tmp, "soak.json");
    run_ok(tmp.path(), &["--local", "2", "--profile", "soak", "--json", &json]);
    let r = read_report(json.as_ref());
    assert_consistent(&r, 2);
    for a in &r.agents {
        let g = a.memory.growth_mb_per_min.expect("a growth rate over 300 s");
        assert!(g < 5.0, "agent {} grew {g:.2} MB/min", a.index);
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}
