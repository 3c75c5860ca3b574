//! Runs on `--ha`: a planned switchover and a failover under load, the
//! audit passing, nothing left; bad input refused with one line.

use super::support::{self, coordinator, read_report};

#[test]
fn a_switchover_and_a_failover_under_load_lose_nothing_acknowledged_and_leave_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = tmp.path().join("ha.toml");
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"switchover\"\nat = \"4s\"\ndrain = true\n\n[[fault]]\nkind = \"failover\"\nat = \"12s\"\nduration = \"4s\"\n",
    )
    .expect("faults");
    let json = tmp.path().join("ha.json");
    let out = coordinator(tmp.path())
        .args(["--local", "2", "--ha", "--replication", "sync", "--profile", "light", "--duration", "30s"])
        .args(["--live", "line", "--faults"])
        .arg(&faults)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("coordinator");
    let text = support::show(&out);
    // A change of leader can end a statement with 57P01 (an abrupt
    // shutdown) or route a connection to a node not yet writable (25006),
    // which duroxide-pg (0.1.38 and before) takes as permanent
    // (docs/findings.md, 7), or cut a connection for longer than an
    // acknowledgement's own retries (finding 9): an orchestration whose
    // acknowledgement meets one fails, and may leave an execution without an
    // instance row (finding 3). Seen in 1 of 3 runs of each kind
    // (docs/ha.md). Anything else fails this test.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HA cluster on 127.0.0.1:"), "{text}");
    let r = read_report(&json);
    let kinds: Vec<&str> = r.faults.iter().map(|f| f.event.kind.as_str()).collect();
    assert_eq!(kinds, ["switchover", "failover"], "{text}");
    assert!(r.faults.iter().all(|f| f.event.error.is_none()), "{:?}", r.faults);
    assert!(r.faults[0].event.detail.starts_with("planned switchover from n"), "{}", r.faults[0].event.detail);
    assert!(r.faults[0].event.detail.contains("HAProxy drained of it first"), "{}", r.faults[0].event.detail);
    assert!(r.faults[1].event.detail.contains("Patroni and Postgres killed"), "{}", r.faults[1].event.detail);
    // Each change of leader says how long writes through the endpoint were
    // unavailable: a failover at least until the leader key expired.
    let writes = |i: usize| r.faults[i].event.writes.clone().expect("writes probed");
    assert!(writes(0).probe_ms == 50 && writes(0).first_failed_s.is_none_or(|_| writes(0).unavailable_s.is_some()));
    let failover = writes(1);
    assert!(failover.unavailable_s.is_some_and(|s| s > 1.0) && failover.failed_writes > 1, "{failover:?}");
    assert!(r.faults[1].event.detail.contains("writes unavailable"), "{}", r.faults[1].event.detail);
    // Synchronous replication: nothing acknowledged was lost; every failure
    // is a known one (named per fault by SQLSTATE), and the gates failed only over it.
    let c = &r.merged.counts;
    assert!(c.completed > 0 && c.failed() == c.failed_infrastructure && c.failed_infrastructure <= 3, "{c:?}");
    for f in &r.faults {
        let known = |e: &String| {
            e.starts_with("57P01 ") || e.starts_with("25006 ") || e == "connection lost in ack_orchestration_item"
        };
        assert!(f.failed_by_error.keys().all(known), "{f:?}");
    }
    let named: u64 = r.faults.iter().flat_map(|f| f.failed_by_error.values()).sum();
    assert!(named <= c.failed_infrastructure, "{named} named, {c:?}");
    let known = |p: &String| {
        p.contains("administrator command")
            || p.contains("read-only transaction")
            || p.contains("error communicating with database")
            || p.contains("missing from the schema")
    };
    assert!(r.audit.problems.iter().all(known), "{:?}", r.audit.problems);
    assert_eq!(r.audit.lost_acknowledged, 0, "{:?}", r.audit);
    let failed: Vec<&str> = r.gates.iter().filter(|g| !g.passed).map(|g| g.name.as_str()).collect();
    assert!(
        failed.iter().all(|g| ["success rate", "infrastructure failures", "correctness audit"].contains(g)),
        "{failed:?}: {text}"
    );
    assert_eq!(out.status.code() == Some(0), failed.is_empty(), "{text}");
    // Processes naming the TMPDIR (every one of the cluster's) are checked too.
    support::assert_nothing_left(tmp.path(), &["ha.toml", "ha.json"]);
}

/// Asynchronous replication: a failover may lose what the old leader
/// acknowledged; whatever the run finds, its counts and its exit code agree
/// with what it names.
#[test]
fn an_asynchronous_failover_reports_what_it_lost_consistently() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = tmp.path().join("fo.toml");
    std::fs::write(&faults, "[[fault]]\nkind = \"failover\"\nat = \"5s\"\nduration = \"1s\"\n").expect("faults");
    let json = tmp.path().join("fo.json");
    let out = coordinator(tmp.path())
        .args(["--local", "1", "--ha", "--replication", "async", "--profile", "light", "--duration", "25s"])
        .arg("--faults")
        .arg(&faults)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("coordinator");
    let text = support::show(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{text}");
    let r = read_report(&json);
    assert!(r.database.contains("async replication"), "{}", r.database);
    let fo = &r.faults[0].event;
    assert!(fo.error.is_none() && fo.writes.as_ref().is_some_and(|w| w.unavailable_s.is_some()), "{fo:?}");
    let a = &r.audit;
    assert!(a.acknowledged_checked > 0, "{a:?}");
    let named = |what: &str| a.lost_work.iter().filter(|l| l.differs == what).count() as u64;
    if a.lost_work.len() < 50 {
        assert_eq!(
            (a.lost_acknowledged, a.changed_output, a.shortened_history),
            (named("status"), named("output"), named("history"))
        );
    }
    let lost = a.lost_acknowledged + a.changed_output + a.shortened_history;
    assert_eq!(lost > 0, a.problems.iter().any(|p| p.starts_with("no lost acknowledged work")), "{:?}", a.problems);
    assert!(lost == 0 || out.status.code() == Some(1), "{text}");
    support::assert_nothing_left(tmp.path(), &["fo.toml", "fo.json"]);
}

#[test]
fn ha_input_that_cannot_work_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = tmp.path().join("f.toml");
    std::fs::write(&faults, "[[fault]]\nkind = \"failover\"\nat = \"2s\"\nduration = \"2s\"\n").expect("faults");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--ha".into(), "--database-url".into(), "postgres://u@127.0.0.1:1/db".into()], "--database-url"),
        (vec!["--faults".into(), faults.display().to_string()], "a failover needs --ha"),
        (vec!["--replication".into(), "sync".into()], "--ha"),
    ];
    for (args, says) in cases {
        let out = coordinator(tmp.path()).args(["--local", "1", "--duration", "5s"]).args(&args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", support::show(&out));
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    support::assert_nothing_left(tmp.path(), &["f.toml"]);
}
