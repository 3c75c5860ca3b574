//! The fault schedule: every kind applied during a short run on the
//! throwaway Postgres, each with its impact and a recovery time, the
//! per-instance audit passing; and impossible schedules refused with one
//! line before anything starts.

use crate::support;

use crate::support::{coordinator, read_report, show};
use loadgen_coordinator::model::RunReport;

/// A light run with `faults` (TOML), `agents` local agents, `duration` of load.
fn run_with(tmp: &std::path::Path, name: &str, agents: &str, duration: &str, faults: &str) -> (Option<i32>, RunReport) {
    run_with_args(tmp, name, agents, duration, faults, &[])
}

/// [`run_with`] and more flags.
fn run_with_args(
    tmp: &std::path::Path,
    name: &str,
    agents: &str,
    duration: &str,
    faults: &str,
    extra: &[&str],
) -> (Option<i32>, RunReport) {
    let file = tmp.join(format!("{name}.toml"));
    std::fs::write(&file, faults).expect("fault file");
    let json = tmp.join(format!("{name}.json"));
    let out = coordinator(tmp)
        .args(["--local", agents, "--profile", "light", "--duration", duration, "--faults"])
        .arg(&file)
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .expect("run coordinator");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Faults ("), "no fault table: {}", show(&out));
    (out.status.code(), read_report(&json))
}

/// What every fault must leave: applied, judged, recovered from (each
/// schedule leaves five seconds before a fault and more after it), and
/// nothing lost.
fn check(r: &RunReport, kinds: &[&str]) {
    check_faults(r, kinds);
    assert!(r.audit.passed(), "{:?}", r.audit.problems);
    let c = &r.merged.counts;
    assert_eq!(c.unfinished, 0, "{c:?}");
}

/// Each fault applied, judged and recovered from.
fn check_faults(r: &RunReport, kinds: &[&str]) {
    assert_eq!(r.faults.iter().map(|f| f.event.kind.as_str()).collect::<Vec<_>>(), kinds);
    for f in &r.faults {
        assert!(f.event.error.is_none(), "{f:?}");
        assert!(!f.event.detail.is_empty() && f.event.end_s >= f.event.at_s, "{f:?}");
        assert!(f.before_orch_per_sec > 0.0, "a level before the fault: {f:?}");
        if f.recovery_s.is_none() {
            let seconds: Vec<String> = r
                .timeline
                .merged
                .iter()
                .map(|p| format!("{:.0}:{:.0}/{:.0}", p.t_s, p.orch_per_sec, p.p99_ms))
                .collect();
            panic!("no recovery time: {f:?}\nseconds (end: orch/s / p99 ms): {}", seconds.join(" "));
        }
    }
}

/// Terminated backends on duroxide-pg 0.1.38 sometimes lose an instance:
/// the first turn's ack dies with the connection (SQLSTATE 57P01 is not
/// retryable there), and the failure duroxide then records is an execution
/// with no instance row, invisible to duroxide's client. When that happens
/// the tool must say so and fail the run; this returns how many it saw.
/// Any other audit problem fails the test.
fn orphans_from_terminated_backends(r: &RunReport, code: Option<i32>) -> u64 {
    if r.audit.passed() {
        return 0;
    }
    let n = r.audit.orphaned;
    assert!(n > 0, "audit problems other than orphans: {:?}", r.audit.problems);
    for p in &r.audit.problems {
        let explained = *p == format!("{n} launched instance(s) missing from the schema")
            || (p.starts_with(&format!("{n} execution(s) without an instance row"))
                && p.matches("terminating connection due to administrator command").count() == n.min(5) as usize);
        assert!(
            explained,
            "an audit problem the terminated backends do not explain: {p} (all: {:?})",
            r.audit.problems
        );
    }
    // The tracker saw each as failed (infrastructure), and the run failed.
    assert!(r.merged.counts.failed() >= n, "{:?}", r.merged.counts);
    assert_ne!(code, Some(0), "a lost instance must fail the run");
    assert!(!r.passed);
    n
}

#[test]
fn database_faults_are_applied_judged_and_survived() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = r#"
        [[fault]]
        kind = "pause-db"
        at = "5s"
        duration = "2s"
        [[fault]]
        kind = "restart-db"
        at = "12s"
        duration = "1s"
        [[fault]]
        kind = "terminate-backends"
        at = "26s"
        share = 0.5
    "#;
    // A crash restart takes several seconds to recover from (seen: 2.8 to
    // 8.2 s in the chaos profile, and not within 10 s twice in CI beside
    // other tests): leave it thirteen. Terminated backends recover in a
    // second or two.
    let (code, r) = run_with(tmp.path(), "db", "2", "34s", faults);
    check_faults(&r, &["pause-db", "restart-db", "terminate-backends"]);
    let lost = orphans_from_terminated_backends(&r, code);
    if lost > 0 {
        eprintln!("{lost} instance(s) lost to terminated backends, reported by the audit and failing the run");
    }
    assert_eq!(r.merged.counts.unfinished, 0, "{:?}", r.merged.counts);
    let pause = &r.faults[0];
    assert!((pause.event.end_s - pause.event.at_s - 2.0).abs() < 0.5, "{pause:?}");
    assert!(pause.during_orch_per_sec < pause.before_orch_per_sec / 2.0, "a paused server completes little: {pause:?}");
    assert!(r.faults[2].event.detail.contains("backends terminated"), "{:?}", r.faults[2]);
    // Failures a fault caused are counted and fail the run; none here means exit 0.
    let failed = r.merged.counts.failed() + r.merged.counts.start_errors;
    assert_eq!(code == Some(0), failed == 0 && r.passed, "exit {code:?} with {failed} failures: {:?}", r.gates);
    support::assert_nothing_left(tmp.path(), &["db.toml", "db.json"]);
}

/// Cancelled statements (SQLSTATE 57014) for 2 s: the fault finds running
/// statements to cancel, the run ends with nothing unfinished, and every
/// failure it causes is counted and named with its cause. duroxide-pg
/// 0.1.38 takes 57014 on an ack as permanent and fails the instance (see
/// docs/findings.md), so failures are expected there; whatever failed must
/// fail the run.
#[test]
fn cancelled_statements_fail_no_instance_unnamed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = "[[fault]]\nkind = \"cancel-queries\"\nat = \"6s\"\nduration = \"2s\"\n";
    let (code, r) = run_with(tmp.path(), "cancel", "2", "14s", faults);
    check_faults(&r, &["cancel-queries"]);
    let detail = &r.faults[0].event.detail;
    let cancelled: u64 = detail.split_whitespace().next().and_then(|n| n.parse().ok()).expect(detail);
    assert!(cancelled > 0, "statements run all the time under load: {detail}");
    let c = &r.merged.counts;
    assert_eq!(c.unfinished, 0, "{c:?}");
    // Every instance that did not end as expected is named with the cancel.
    let cause = "canceling statement due to user request";
    for m in &r.audit.mismatches {
        assert!(m.problems.iter().any(|p| p.contains(cause)), "{m:?}");
    }
    for p in &r.audit.problems {
        assert!(p.contains(cause) || p.ends_with("launched instance(s) missing from the schema"), "{p}");
    }
    let failed = c.failed() + c.start_errors;
    assert_eq!(c.failed() == 0, r.audit.mismatches.is_empty() && r.audit.passed(), "{c:?} {:?}", r.audit);
    assert_eq!(code == Some(0), failed == 0 && r.passed, "exit {code:?} with {failed} failures: {:?}", r.gates);
    if failed > 0 {
        eprintln!("{failed} instance(s) failed by cancelled statements, each named by the audit");
    }
    support::assert_nothing_left(tmp.path(), &["cancel.toml", "cancel.json"]);
}

#[test]
fn agent_faults_freeze_one_and_kill_another_as_planned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = r#"
        [[fault]]
        kind = "freeze-agent"
        at = "5s"
        duration = "2s"
        agent = 1
        [[fault]]
        kind = "kill-agent"
        at = "16s"
        agent = 2
    "#;
    // A killed runtime's activity locks hold its work until they expire (30 s
    // by default): a 5 s lock lets the survivors take it over within the run.
    // The freeze gets 9 s to recover before the kill changes the level (5 s
    // once missed it in CI, beside other tests).
    let (code, r) = run_with_args(tmp.path(), "agents", "3", "24s", faults, &["--worker-lock-timeout", "5s"]);
    check(&r, &["freeze-agent", "kill-agent"]);
    // The killed agent took its third of the load: recovery is judged against the rest.
    let kill = &r.faults[1];
    assert!(kill.event.load_kept.is_some_and(|k| (k - 2.0 / 3.0).abs() < 0.05), "{kill:?}");
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
fn a_runtime_restart_stops_the_only_runtime_and_a_fresh_one_takes_over() {
    // One agent with one runtime: while it is down nothing can complete, so
    // the work after the fault proves the fresh runtime took over.
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = r#"
        [[fault]]
        kind = "restart-runtime"
        at = "5s"
        duration = "2s"
    "#;
    let (code, r) = run_with(tmp.path(), "restart", "1", "14s", faults);
    check(&r, &["restart-runtime"]);
    let f = &r.faults[0];
    assert_eq!(f.event.target, "agent 0 runtime 0");
    assert!(f.event.detail.contains("runtime 0 shut down") && f.event.detail.contains("-r0-g1"), "{f:?}");
    // The agent reports once the fresh runtime runs: grace, downtime, start.
    assert!(f.event.end_s - f.event.at_s >= 2.0, "{f:?}");
    assert!(f.during_orch_per_sec < f.before_orch_per_sec / 2.0, "nothing runs the work meanwhile: {f:?}");
    assert_eq!(code, Some(if r.passed { 0 } else { 1 }), "{:?}", r.gates);
}

#[test]
fn relay_faults_slow_and_cut_the_agents_database_traffic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = r#"
        [[fault]]
        kind = "db-latency"
        at = "5s"
        duration = "3s"
        delay = "50ms"
        [[fault]]
        kind = "db-partition"
        at = "16s"
        duration = "2s"
        agent = 0
    "#;
    // The slowed queries leave a backlog: 8 s to recover before the
    // partition (5 s once missed it in CI, beside other tests).
    let (code, r) = run_with(tmp.path(), "relay", "2", "26s", faults);
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
        (vec!["--faults", &unknown], "unknown fault kind `melt-db`"),
        (vec!["--duration", "10s", "--faults", &late], "lasts past the end of the load"),
        (vec!["--faults", &overlap], "overlaps pause-db"),
        (
            vec!["--faults", &theirs, "--database-url", "postgres://u:p@127.0.0.1:1/db"],
            "refused restart-db at 1s: this coordinator cannot stop or pause a database it did not start",
        ),
        (
            vec!["--profile", "chaos", "--database-url", "postgres://u:p@127.0.0.1:1/db"],
            "refused pause-db at 30s, restart-db at 50s, pause-db at",
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

/// stall-writes on `history`: every acknowledgement waits mid-call (after
/// its lock-token check) while the fault lasts; the fault counts the
/// statements it stalled, a stall shorter than the lock timeout costs no
/// correctness, and its trigger, function and counter are gone afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_acknowledgements_wait_mid_call_and_the_stall_is_removed() {
    use sqlx::Connection;
    let pg = loadgen_coordinator::db::embedded::EmbeddedPostgres::start().await.expect("throwaway postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let faults =
        "[[fault]]\nkind = \"stall-writes\"\nat = \"2s\"\nduration = \"3s\"\ntable = \"history\"\ndelay = \"300ms\"\n";
    let url = pg.url().to_string();
    let dir = tmp.path().to_path_buf();
    let (code, r) = tokio::task::spawn_blocking(move || {
        run_with_args(&dir, "stall", "1", "8s", faults, &["--database-url", &url, "--keep-schema"])
    })
    .await
    .expect("the run");
    check_faults(&r, &["stall-writes"]);
    let detail = &r.faults[0].event.detail;
    let stalled: u64 = detail.split_whitespace().next().and_then(|n| n.parse().ok()).expect(detail);
    assert!(stalled > 0 && detail.contains("writing history waited 300ms first, over 3s"), "{detail}");
    assert_eq!(code, Some(0), "a stall under the lock timeout costs nothing: {:?} {:?}", r.gates, r.audit.problems);
    assert!(r.audit.exactly_once_checked && r.audit.processed_twice == 0, "{:?}", r.audit);
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_proc WHERE proname LIKE 'loadgen_stall%') \
              + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'loadgen_stall%') \
              + (SELECT count(*) FROM pg_class WHERE relname LIKE 'loadgen_stall%')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("look for the stall's objects");
    assert_eq!(left, 0, "the stall's trigger, function or counter was left in {}", r.schema);
    sqlx::query(&format!("DROP SCHEMA {} CASCADE", r.schema)).execute(&mut conn).await.expect("drop kept schema");
    conn.close().await.expect("close");
}

/// stall-writes on one agent: only agent 1's acknowledgements wait, 1 s
/// each (its connections are told apart by their application_name). Its
/// runtime then acknowledges at most a couple of turns a second while agent
/// 0's runs free, so the run keeps most of its throughput; a stall of every
/// agent's acknowledgements would take it to a few orchestrations a second.
#[test]
fn a_stall_of_one_agent_holds_that_agent_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = "[[fault]]\nkind = \"stall-writes\"\nat = \"3s\"\nduration = \"4s\"\ntable = \"history\"\ndelay = \"1s\"\nagent = 1\n";
    let (_, r) = run_with(tmp.path(), "one", "2", "10s", faults);
    check_faults(&r, &["stall-writes"]);
    let f = &r.faults[0];
    let detail = &f.event.detail;
    let stalled: u64 = detail.split_whitespace().next().and_then(|n| n.parse().ok()).expect(detail);
    assert!(stalled > 0 && detail.contains("by agent 1"), "{detail}");
    assert!(
        f.during_orch_per_sec > 0.3 * f.before_orch_per_sec,
        "agent 0 kept the run going: {:.1} orch/s during against {:.1} before ({detail})",
        f.during_orch_per_sec,
        f.before_orch_per_sec
    );
}

/// upgrade-agent: agent 0 hands its runtimes to a successor process (here
/// the same build, started with --runtimes-only) while the load goes on; the
/// successor's activity executions count as the agent's, the audit passes,
/// and no successor is left running.
#[test]
fn an_agent_hands_its_runtimes_to_a_successor_under_load() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = support::agent_bin();
    let faults = format!(
        "[[fault]]\nkind = \"upgrade-agent\"\nat = \"3s\"\nagent = 0\nbinary = {:?}\n",
        bin.display().to_string()
    );
    let (code, r) = run_with(tmp.path(), "upgrade", "2", "10s", &faults);
    check_faults(&r, &["upgrade-agent"]);
    let detail = &r.faults[0].event.detail;
    assert!(detail.starts_with("agent 0: 1 runtime(s) handed over to") && detail.contains("(duroxide-pg "), "{detail}");
    assert_eq!(code, Some(0), "{:?} {:?}", r.gates, r.audit.problems);
    // Agent 0 kept starting orchestrations after the handover, and they ended.
    let series = &r.timeline.agents[0];
    let after: u64 = series.iter().filter(|p| p.t_s > 5.0).map(|p| p.completed).sum();
    assert!(after > 0, "{series:?}");
    assert!(r.audit.activities_executed >= r.audit.activity_completions, "{:?}", r.audit);
    assert!(support::processes_mentioning("--runtimes-only").is_empty(), "a successor was left running");
}
