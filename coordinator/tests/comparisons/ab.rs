//! `coordinator ab`: two copies of one agent binary read "no significant
//! difference"; a candidate made slower by a known amount (the test-only
//! knob LOADGEN_TEST_SLOW_ACTIVITY_MS) reads "slower", with every run kept;
//! bad input is one line and exit 2.

use crate::support;

use crate::support::{agent_bin, coordinator, show};
use loadgen_coordinator::ab::stats::Verdict;
use loadgen_coordinator::model::ab::{AbReport, Build};

#[derive(serde::Deserialize)]
struct AbDoc {
    ab: AbReport,
    runs: Vec<loadgen_coordinator::model::RunReport>,
}

/// An A/B run of 3 + 3 short light runs; `extra` adds flags.
fn ab(tmp: &std::path::Path, candidate: &std::path::Path, extra: &[&str]) -> (std::process::Output, AbDoc) {
    let json = tmp.join("ab.json");
    let out = coordinator(tmp)
        .arg("ab")
        .arg("--baseline-agent")
        .arg(agent_bin())
        .arg("--candidate-agent")
        .arg(candidate)
        .args(["--profile", "light", "--duration", "3s", "--repeat", "3", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .expect("run coordinator ab");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| panic!("no JSON: {}", show(&out)));
    (out, serde_json::from_str(&text).expect("ab JSON parses"))
}

fn verdict(doc: &AbDoc, name: &str) -> Verdict {
    doc.ab.metric(name).unwrap_or_else(|| panic!("no {name}")).verdict
}

#[test]
fn two_copies_of_one_build_show_no_significant_difference() {
    let tmp = tempfile::tempdir().expect("tmp");
    let copy = tmp.path().join("agent-copy");
    std::fs::copy(agent_bin(), &copy).expect("copy the agent");
    // A wide smallest effect: this test asserts the machinery, and a shared
    // two-core machine moves short runs by several percent.
    let (out, doc) = ab(tmp.path(), &copy, &["--min-effect-pct", "15"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(verdict(&doc, "orch/s"), Verdict::NoSignificantDifference, "{:?}", doc.ab.metrics);
    // A 3 s light run completes about a hundred: its p99 is its worst one
    // or two, and gets no verdict (copies of one binary moved it by 23%).
    assert_eq!(verdict(&doc, "p99 ms"), Verdict::Unknown, "{:?}", doc.ab.metrics);
    assert!(doc.ab.notes.iter().any(|n| n.starts_with("p99: no verdict")), "{:?}", doc.ab.notes);
    // Every repetition is kept, alternating in pairs, each on its own schema.
    let builds: Vec<Build> = doc.ab.runs.iter().map(|r| r.build).collect();
    use Build::{Baseline as B, Candidate as C};
    assert_eq!(builds, [B, C, C, B, B, C]);
    assert_eq!(doc.runs.len(), 6);
    let mut schemas: Vec<&str> = doc.runs.iter().map(|r| r.schema.as_str()).collect();
    schemas.dedup();
    assert_eq!(schemas.len(), 6);
    assert!(doc.runs.iter().all(|r| r.passed && r.audit.passed()));
    // The per-procedure ratios come with the headline ones.
    assert!(doc.ab.procedures.iter().any(|m| m.name == "fetch_orchestration_item mean ms"), "{:?}", doc.ab.procedures);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Verdict: orch/s no significant difference"), "{}", show(&out));
    support::assert_nothing_left(tmp.path(), &["ab.json", "agent-copy"]);
}

#[test]
fn a_candidate_slower_by_a_known_amount_is_called_slower() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Every activity 150 ms slower: each orchestration waits that much more.
    let (out, doc) = ab(
        tmp.path(),
        &agent_bin(),
        &["--candidate-env", "LOADGEN_TEST_SLOW_ACTIVITY_MS=150", "--min-effect-pct", "15", "--fail-on-slower"],
    );
    assert_eq!(verdict(&doc, "orch/s"), Verdict::Slower, "{:?}", doc.ab.metrics);
    assert_eq!(verdict(&doc, "p50 ms"), Verdict::Slower, "{:?}", doc.ab.metrics);
    let p50 = doc.ab.metric("p50 ms").expect("p50");
    let added = p50.candidate_median - p50.baseline_median;
    assert!(added > 100.0, "about 150 ms more per orchestration: {p50:?}");
    assert_eq!(doc.ab.candidate.env, ["LOADGEN_TEST_SLOW_ACTIVITY_MS=150"]);
    // --fail-on-slower makes the verdict the exit code.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
}

#[test]
fn bad_ab_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = agent_bin();
    let bin = bin.to_str().expect("utf-8 path");
    for (args, needle) in [
        (vec!["--candidate-agent", "/nonexistent/agent"], "--candidate-agent /nonexistent/agent: no such agent binary"),
        (vec!["--candidate-agent", bin, "--repeat", "1"], "at least 2 runs per build"),
        (vec!["--candidate-agent", bin, "--agents", "a:1"], "ab runs local agents"),
        (vec!["--candidate-agent", bin, "--candidate-env", "NOEQUALS"], "expected key=value"),
        (vec!["--candidate-agent", bin, "--profile", "chaos-backends"], "ab compares builds without faults"),
    ] {
        let out = coordinator(tmp.path())
            .args(["ab", "--baseline-agent", bin])
            .args(&args)
            .output()
            .expect("run coordinator ab");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle) && err.trim().lines().count() == 1, "{args:?}: {}", show(&out));
    }
    support::assert_nothing_left(tmp.path(), &[]);
}

/// `--baseline-build`/`--candidate-build` refuse what is no release and no
/// checkout with one line and exit 2, and leave no copy of the workspace
/// behind (the release check asks the crates.io index, as cargo does).
#[test]
fn builds_that_cannot_be_had_are_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = agent_bin();
    let bin = bin.to_str().expect("utf-8 path");
    let not_a_checkout = tmp.path().join("not-duroxide-pg");
    std::fs::create_dir_all(&not_a_checkout).expect("dir");
    std::fs::write(not_a_checkout.join("Cargo.toml"), "[package]\nname = \"something-else\"\n").expect("toml");
    let dir = not_a_checkout.to_str().expect("utf-8 path");
    for (build, needle) in [
        ("0.1.999", "duroxide-pg 0.1.999 cannot be used"),
        ("/nonexistent/duroxide-pg", "is neither a duroxide-pg version (like 0.1.37) nor a directory"),
        (dir, "is not a duroxide-pg checkout"),
    ] {
        let out = coordinator(tmp.path())
            .args(["ab", "--baseline-agent", bin, "--candidate-build", build, "--profile", "light"])
            .output()
            .expect("run coordinator ab");
        assert_eq!(out.status.code(), Some(2), "{build}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.trim().lines().filter(|l| !l.starts_with("build-agent: building")).collect();
        assert!(err.contains(needle) && lines.len() == 1, "{build}: {}", show(&out));
    }
    // A run's --build refuses the same way, before anything starts; and
    // with an agent binary, or in ab, it is a mistake named in one line.
    for (args, needle) in [
        (&["--local", "1", "--build", "0.1.999"][..], "duroxide-pg 0.1.999 cannot be used"),
        (&["--local", "1", "--build", "0.1.37", "--agent-bin", bin][..], "cannot be used with"),
        (&["ab", "--baseline-agent", bin, "--candidate-agent", bin, "--build", "0.1.37"][..], "drop --build"),
    ] {
        let out = coordinator(tmp.path()).args(args).args(["--profile", "light"]).output().expect("run coordinator");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.trim().lines().filter(|l| !l.starts_with("build-agent: building")).collect();
        assert!(err.contains(needle) && lines.len() == 1, "{args:?}: {}", show(&out));
    }
    let builds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/builds");
    let copies: Vec<_> = std::fs::read_dir(&builds)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("src-"))
        .map(|e| e.path())
        .collect();
    assert!(copies.is_empty(), "copies of the workspace left behind: {copies:?}");
    assert!(!builds.join("agent-0.1.999").exists() && !builds.join("build-0.1.999.log").exists());
    let out = coordinator(tmp.path()).args(["ab", "--candidate-agent", bin]).output().expect("run coordinator ab");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--baseline-agent"), "{}", show(&out));
    support::assert_nothing_left(tmp.path(), &["not-duroxide-pg"]);
}
