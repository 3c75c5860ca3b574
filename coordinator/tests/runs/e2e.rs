//! End-to-end runs of the real `coordinator` and `agent` binaries against a
//! real throwaway Postgres.

use std::path::{Path, PathBuf};
use std::process::Output;

use loadgen_coordinator::db::embedded::EmbeddedPostgres;
use sqlx::Connection;

use crate::support;
use crate::support::{assert_consistent, coordinator, processes_mentioning, read_report, show};

#[test]
fn three_local_agents_on_the_embedded_default_complete_everything_and_leave_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("out.json");
    let out = coordinator(tmp.path())
        .args(["--local", "3", "--profile", "light", "--duration", "3s", "--json"])
        .arg(&json)
        .output()
        .expect("run coordinator");
    assert!(out.status.success(), "{}", show(&out));
    let report = read_report(&json);
    assert_consistent(&report, 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Gates: PASSED") && stdout.contains("merged"), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("orch/s"), "live line missing: {}", show(&out));
    // The throwaway cluster lived in our TMPDIR: nothing may remain there
    // except our own JSON file, and no process may still use it.
    let left: Vec<PathBuf> =
        std::fs::read_dir(tmp.path()).expect("tmp").flatten().map(|e| e.path()).filter(|p| *p != json).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let tmp_str = tmp.path().display().to_string();
    assert!(processes_mentioning(&tmp_str).is_empty(), "processes left: {:?}", processes_mentioning(&tmp_str));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_shows_every_instance_completed_once_and_the_schema_is_dropped() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("keep.json");
    let run = |extra: &[&str], json: &Path| {
        let mut cmd = coordinator(tmp.path());
        cmd.args(["--local", "2", "--profile", "light", "--duration", "2s", "--database-url", pg.url(), "--json"])
            .arg(json)
            .args(extra);
        let out = cmd.output().expect("run coordinator");
        assert!(out.status.success(), "{}", show(&out));
        read_report(json)
    };
    // Run 1 keeps its schema so the test can read it independently.
    let kept = run(&["--keep-schema"], &json);
    assert_consistent(&kept, 2);
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let sql = format!(
        "SELECT count(*), count(*) FILTER (WHERE n = 1 AND done = 1) FROM \
         (SELECT i.instance_id, count(e.*) AS n, count(*) FILTER (WHERE e.status = 'Completed') AS done \
          FROM {s}.instances i LEFT JOIN {s}.executions e ON e.instance_id = i.instance_id GROUP BY i.instance_id) t",
        s = kept.schema
    );
    let (instances, once): (i64, i64) = sqlx::query_as(&sql).fetch_one(&mut conn).await.expect("read schema");
    assert_eq!(instances as u64, kept.merged.counts.launched);
    assert_eq!(once as u64, kept.merged.counts.launched);
    let queued: i64 = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM {s}.orchestrator_queue) + (SELECT count(*) FROM {s}.worker_queue)",
        s = kept.schema
    ))
    .fetch_one(&mut conn)
    .await
    .expect("queues");
    assert_eq!(queued, 0, "work left queued");
    // `coordinator audit` on the kept schema passes, and catches tampering.
    let audit = |json: &Path| {
        let mut cmd = coordinator(tmp.path());
        cmd.args(["audit", "--schema", &kept.schema, "--database-url", pg.url(), "--json"]).arg(json);
        cmd.output().expect("run coordinator audit")
    };
    let out = audit(&tmp.path().join("audit1.json"));
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASSED"), "{}", show(&out));
    let recorded: loadgen_coordinator::model::Audit =
        serde_json::from_slice(&std::fs::read(tmp.path().join("audit1.json")).expect("audit json")).expect("parse");
    assert_eq!((recorded.launched, recorded.completed), (kept.merged.counts.launched, kept.merged.counts.completed));
    sqlx::query(&format!(
        "UPDATE {s}.executions SET output = 'tampered' WHERE instance_id = (SELECT min(instance_id) FROM {s}.instances)",
        s = kept.schema
    ))
    .execute(&mut conn)
    .await
    .expect("tamper");
    let out = audit(&tmp.path().join("audit2.json"));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("output \"tampered\" where \"fanout:3\" was expected"),
        "{}",
        show(&out)
    );
    sqlx::query(&format!("DROP SCHEMA {} CASCADE", kept.schema)).execute(&mut conn).await.expect("drop kept");

    // Run 2 drops its schema at the end.
    let dropped = run(&[], &tmp.path().join("drop.json"));
    assert_consistent(&dropped, 2);
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'loadgen_%'")
            .fetch_one(&mut conn)
            .await
            .expect("schemata");
    assert_eq!(schemas, 0, "schema leaked");
    conn.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_with_one_clear_line_and_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A reachable database that checks passwords, for the cases that get past
    // the database pre-flight (and the one with a wrong password).
    let pg = EmbeddedPostgres::start_with_password("hunter2").await.expect("throwaway postgres for the test");
    let good = pg.url().to_string();
    let wrong_password = format!("postgres://loadgen:hunter3@127.0.0.1:{}/postgres", pg.port());
    let dead = "postgres://u:hunter2@127.0.0.1:1/db";
    let profile_typo = tmp.path().join("typo.toml");
    std::fs::write(&profile_typo, "[[profile]]\nname='typo'\nmax_concurent=5\n").expect("profile file");
    let typo_arg = profile_typo.display().to_string();
    // (arguments, exit code, text the error must contain)
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--local", "1", "--profile", "nope"],
            2,
            "unknown profile \"nope\" (known: light, standard, production, high-concurrency, pool-stress, soak, high-latency, suite, timers, events, contention, mixed, ramp",
        ),
        (vec!["--local", "3", "--max-concurrent", "2"], 2, "budget 2 is smaller than the number of agents (3)"),
        (vec!["--local", "0"], 2, "--local needs at least 1 agent"),
        (vec!["--local", "1", "--duration", "0s"], 2, "invalid duration 0s"),
        (vec!["--local", "1", "--duration", "-5s"], 2, "must not be negative"),
        (vec!["--local", "1", "--duration", "5parsecs"], 2, "unknown unit"),
        (vec!["--local", "1", "--max-concurrent", "-3"], 2, "invalid value '-3' for '--max-concurrent"),
        (vec![], 2, "no agents: give --local N"),
        (vec!["--local", "1", "--agents", "a:1"], 2, "cannot be used with"),
        (vec!["--agents", "127.0.0.1:7000"], 2, "--agents needs --database-url"),
        (vec!["--agents", "127.0.0.1:7000", "--database-url", &good, "--token", ""], 2, "the agent token is empty"),
        (vec!["--agents", "nohost", "--database-url", dead], 2, "malformed agent address \"nohost\""),
        (vec!["--agents", "127.0.0.1:1,127.0.0.1:1", "--database-url", dead], 2, "listed twice"),
        (vec!["--local", "1", "--database-url", dead], 3, "cannot connect to postgres://u:***@127.0.0.1:1/db"),
        (vec!["--agents", "127.0.0.1:1", "--database-url", &good], 3, "agent 127.0.0.1:1: unreachable"),
        (vec!["--local", "1", "--profile-file", "/nonexistent.toml"], 2, "cannot read profile file /nonexistent.toml"),
        (vec!["--local", "1", "--profile-file", &typo_arg], 2, "unknown field `max_concurent`"),
        (vec!["--local", "1", "--max-concurrent", "0"], 2, "invalid max_concurrent 0: must be at least 1"),
        (vec!["--local", "1", "--database-url", &wrong_password], 3, "password authentication failed"),
        (
            vec!["--local", "2", "--runtimes-per-agent", "20", "--pool-max", "20", "--database-url", &good],
            2,
            "the plan needs up to 850 connections (2 agent(s) x (20 runtime(s) + 1 client) x pool 20/20 + 10 for the coordinator) but the server has",
        ),
    ];
    for (args, code, needle) in &cases {
        let out = coordinator(tmp.path()).args(args).output().expect("run coordinator");
        check_one_line(args, &out, *code, needle);
    }
    // No server binaries where we are told to look: say what to install.
    let empty = tempfile::tempdir().expect("empty bindir");
    let out = coordinator(tmp.path())
        .args(["--local", "1"])
        .env("LOADGEN_PG_BINDIR", empty.path())
        .output()
        .expect("run coordinator");
    check_one_line(&["--local", "1"], &out, 3, "apt-get install postgresql");
    // Nothing left behind: no file, no process, no schema.
    support::assert_nothing_left(tmp.path(), &["typo.toml"]);
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let schemas: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'loadgen%'")
        .fetch_one(&mut conn)
        .await
        .expect("schemas");
    assert_eq!(schemas, 0, "bad input left a schema");
}

fn check_one_line(args: &[&str], out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", show(out));
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line: {err}");
    assert!(lines[0].contains(needle), "{args:?}: {err}");
    for pw in ["hunter2", "hunter3"] {
        assert!(!err.contains(pw) && !String::from_utf8_lossy(&out.stdout).contains(pw), "password leaked");
    }
}

#[test]
fn ctrl_c_mid_run_releases_agents_and_removes_the_throwaway_postgres() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = coordinator(tmp.path())
        .args(["--local", "2", "--profile", "light", "--duration", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coordinator");
    // Wait (bounded) until the load is running: the first live line.
    let rx = support::stderr_lines(&mut child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a live line within 60s");
        let live = line.contains("orch/s");
        seen.push(line);
        if live {
            break;
        }
    }
    assert!(loadgen_common::process::signal(child.id(), loadgen_common::process::SIGINT));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "coordinator did not stop after Ctrl-C: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "{seen:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("tmp").flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let tmp_str = tmp.path().display().to_string();
    assert!(processes_mentioning(&tmp_str).is_empty(), "processes left: {:?}", processes_mentioning(&tmp_str));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_agent_with_the_wrong_pool_size_is_refused_and_the_right_one_runs() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let default_pool = support::spawn_agent(pg.url(), &[]);
    let out = coordinator(tmp.path())
        .args(["--agents", &default_pool.address, "--database-url", pg.url(), "--profile", "pool-stress"])
        .output()
        .expect("run coordinator");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("runs with a connection pool of 10, the profile needs 5: restart it with --pool-max 5"),
        "{err}"
    );
    drop(default_pool);
    let right = support::spawn_agent(pg.url(), &["--pool-max", "5"]);
    let json = tmp.path().join("pool.json");
    let out = coordinator(tmp.path())
        .args(["--agents", &right.address, "--database-url", pg.url(), "--profile", "pool-stress", "--duration", "3s"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run coordinator");
    assert!(out.status.success(), "{}", show(&out));
    let r = read_report(&json);
    assert_eq!(r.agents[0].pool_max, 5);
    assert_consistent(&r, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_url_and_token_may_come_from_a_dotenv_file_and_are_never_printed() {
    let pg = EmbeddedPostgres::start_with_password("s3cret-pw").await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let url = format!("postgres://loadgen:s3cret-pw@127.0.0.1:{}/postgres", pg.port());
    std::fs::write(tmp.path().join(".env"), format!("# test\nDATABASE_URL=\"{url}\"\n")).expect(".env");
    let out = coordinator(tmp.path())
        .current_dir(tmp.path())
        .args(["--local", "1", "--profile", "light", "--duration", "1s", "--json", "out.json"])
        .output()
        .expect("run coordinator");
    assert!(out.status.success(), "{}", show(&out));
    let report = read_report(&tmp.path().join("out.json"));
    assert_eq!(report.database, format!("postgres://loadgen:***@127.0.0.1:{}/postgres", pg.port()));
    let everything = format!("{}{}", show(&out), std::fs::read_to_string(tmp.path().join("out.json")).expect("json"));
    assert!(!everything.contains("s3cret-pw"), "the password leaked");
}
