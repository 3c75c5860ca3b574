//! The fault schedule: every kind applied during a short run on the
//! throwaway Postgres, each with its impact and a recovery time, the
//! per-instance audit passing; and impossible schedules refused with one
//! line before anything starts.

mod support;

use loadgen_coordinator::model::RunReport;
use support::{coordinator, read_report, show};

/// A light run with `faults` (TOML), `agents` local agents, `duration` of load.
fn run_with(tmp: &std::path::Path, name: &str, agents: &str, duration: &str, faults: &str) -> (Option<i32>, RunReport) {
    let file = tmp.join(format!("{name}.toml"));
    std::fs::write(&file, faults).expect("fault file");
    let json = tmp.join(format!("{name}.json"));
    let out = coordinator(tmp)
        .args(["--local", agents, "--profile", "light", "--duration", duration, "--faults"])
        .arg(&file)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run coordinator");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Faults ("), "no fault table: {}", show(&out));
    (out.status.code(), read_report(&json))
}

/// What every fault must leave: applied, judged, and nothing lost.
fn check(r: &RunReport, kinds: &[&str]) {
    assert_eq!(r.faults.iter().map(|f| f.event.kind.as_str()).collect::<Vec<_>>(), kinds);
    for f in &r.faults {
        assert!(f.event.error.is_none(), "{f:?}");
        assert!(!f.event.detail.is_empty() && f.event.end_s >= f.event.at_s, "{f:?}");
        assert!(f.before_orch_per_sec > 0.0, "a level before the fault: {f:?}");
    }
    assert!(r.audit.passed(), "{:?}", r.audit.problems);
    let c = &r.merged.counts;
    assert_eq!(c.unfinished, 0, "{c:?}");
}

#[test]
fn database_faults_are_applied_judged_and_survived() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = r#"
        [[fault]]
        kind = "pause-db"
        at = "3s"
        duration = "2s"
        [[fault]]
        kind = "terminate-backends"
        at = "8s"
        share = 0.5
        [[fault]]
        kind = "restart-db"
        at = "11s"
        duration = "1s"
    "#;
    let (code, r) = run_with(tmp.path(), "db", "2", "18s", faults);
    check(&r, &["pause-db", "terminate-backends", "restart-db"]);
    let pause = &r.faults[0];
    assert!((pause.event.end_s - pause.event.at_s - 2.0).abs() < 0.5, "{pause:?}");
    assert!(pause.during_orch_per_sec < pause.before_orch_per_sec / 2.0, "a paused server completes little: {pause:?}");
    assert!(pause.recovery_s.is_some(), "the run recovers from a 2 s pause: {pause:?}");
    assert!(r.faults[1].event.detail.contains("backends terminated"), "{:?}", r.faults[1]);
    // Failures a fault caused are counted and fail the run; none here means exit 0.
    let failed = r.merged.counts.failed() + r.merged.counts.start_errors;
    assert_eq!(code == Some(0), failed == 0 && r.passed, "exit {code:?} with {failed} failures: {:?}", r.gates);
    support::assert_nothing_left(tmp.path(), &["db.toml", "db.json"]);
}

#[test]
fn agent_faults_freeze_one_and_kill_another_as_planned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = r#"
        [[fault]]
        kind = "freeze-agent"
        at = "3s"
        duration = "2s"
        agent = 1
        [[fault]]
        kind = "kill-agent"
        at = "7s"
        agent = 2
    "#;
    let (code, r) = run_with(tmp.path(), "agents", "3", "10s", faults);
    check(&r, &["freeze-agent", "kill-agent"]);
    // The killed agent is lost as planned: reported, not degrading the run;
    // its orchestrations were finished by the others.
    assert_eq!(r.lost_agents.len(), 1, "{:?}", r.lost_agents);
    let lost = &r.lost_agents[0];
    assert!(lost.planned && lost.index == 2, "{lost:?}");
    assert_eq!(lost.still_running, 0, "{lost:?}");
    assert!(!r.degraded());
    assert_eq!(code, Some(if r.passed { 0 } else { 1 }), "{:?}", r.gates);
}

#[test]
fn relay_faults_slow_and_cut_the_agents_database_traffic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = r#"
        [[fault]]
        kind = "db-latency"
        at = "3s"
        duration = "3s"
        delay = "50ms"
        [[fault]]
        kind = "db-partition"
        at = "8s"
        duration = "2s"
        agent = 0
    "#;
    let (code, r) = run_with(tmp.path(), "relay", "2", "14s", faults);
    check(&r, &["db-latency", "db-partition"]);
    let slow = &r.faults[0];
    assert!(slow.event.detail.contains("2 agent(s): +50ms each way"), "{slow:?}");
    // 50 ms each way on every query: far fewer completions, each far slower.
    assert!(slow.during_orch_per_sec < slow.before_orch_per_sec / 2.0, "{slow:?}");
    assert!(slow.during_p99_ms > 2.0 * slow.before_p99_ms, "{slow:?}");
    assert!(r.faults[1].event.detail.contains("1 agent(s): no database traffic"), "{:?}", r.faults[1]);
    assert_eq!(code, Some(if r.passed { 0 } else { 1 }), "{:?}", r.gates);
}

#[test]
fn impossible_schedules_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let unknown = write("unknown.toml", "[[fault]]\nkind = \"melt-db\"\nat = \"1s\"\n");
    let late = write("late.toml", "[[fault]]\nkind = \"pause-db\"\nat = \"9s\"\nduration = \"3s\"\n");
    let overlap = write(
        "overlap.toml",
        "[[fault]]\nkind = \"pause-db\"\nat = \"1s\"\nduration = \"3s\"\n[[fault]]\nkind = \"restart-db\"\nat = \"2s\"\nduration = \"1s\"\n",
    );
    let theirs = write("theirs.toml", "[[fault]]\nkind = \"restart-db\"\nat = \"1s\"\nduration = \"1s\"\n");
    let no_delay = write("nodelay.toml", "[[fault]]\nkind = \"db-latency\"\nat = \"1s\"\nduration = \"1s\"\n");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--faults", &unknown], "unknown variant `melt-db`"),
        (vec!["--duration", "10s", "--faults", &late], "lasts past the end of the load"),
        (vec!["--faults", &overlap], "overlaps pause-db"),
        (
            vec!["--faults", &theirs, "--database-url", "postgres://u:p@127.0.0.1:1/db"],
            "cannot stop or pause a database this coordinator did not start",
        ),
        (vec!["--faults", "/nonexistent/faults.toml"], "cannot read fault schedule"),
        (vec!["--faults", &no_delay], "needs a delay"),
    ];
    for (args, needle) in cases {
        let out = coordinator(tmp.path()).args(["--local", "1"]).args(&args).output().expect("run coordinator");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {}", show(&out));
        assert!(stderr.contains(needle), "{args:?}: {}", show(&out));
    }
}
