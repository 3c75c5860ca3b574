//! Where the provider spends the database's time: every Postgres run reports
//! its stored procedures and dequeues from the server's statistics (the
//! throwaway Postgres turns them on), and a server without them is told
//! which setting to enable instead of failing the run.

use crate::support::{coordinator, read_report, show};
use loadgen_coordinator::db::embedded::EmbeddedPostgres;
use sqlx::Connection;

#[test]
fn a_run_on_the_embedded_default_reports_its_procedures_and_empty_fetches() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("out.json");
    let out = coordinator(tmp.path())
        .args(["--local", "2", "--profile", "light", "--duration", "3s", "--json"])
        .arg(&json)
        .output()
        .expect("run coordinator");
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Provider time by stored procedure") && stdout.contains("Dequeues:"), "{}", show(&out));
    let r = read_report(&json);
    let p = r.procedures.as_ref().expect("procedures");
    assert!(p.functions_tracked && p.statements_tracked && p.advice.is_empty(), "{p:?}");
    let f = |name: &str| p.functions.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name}: {p:?}"));
    // Every instance's first turn is acked, and every ack follows a fetch
    // that returned it.
    let launched = r.merged.counts.launched;
    let acks = f("ack_orchestration_item").calls;
    assert!(acks >= launched, "{acks} acks for {launched} instances");
    let fetch = p.fetch("fetch_orchestration_item").expect("fetch row");
    assert!(fetch.calls >= acks && fetch.empty <= fetch.calls - acks + acks / 10, "{fetch:?} with {acks} acks");
    assert!(fetch.calls_while_ready <= fetch.calls && fetch.empty_while_ready <= fetch.calls_while_ready, "{fetch:?}");
    // The share while work was ready is given only when it was measured.
    assert!(stdout.contains(&fetch.ready_phrase()), "{}", show(&out));
    assert_eq!(fetch.ready_measured(), !fetch.ready_phrase().contains("not measured"), "{fetch:?}");
    // The two sources agree on the dequeue's calls: both are read once the
    // agents' connections closed (a backend sends its counters at exit).
    let by_function = f("fetch_orchestration_item").calls as f64;
    assert!((fetch.calls as f64 - by_function).abs() <= by_function * 0.05 + 5.0, "{fetch:?} vs {by_function}");
    let shares: f64 = p.functions.iter().map(|f| f.share_pct).sum();
    assert!((shares - 100.0).abs() < 0.01, "{shares}");
    // The generator's own statements are told apart from the provider's.
    assert!(p.statements.iter().any(|s| s.generator), "{:?}", p.statements);
    assert!(p.statements.iter().any(|s| !s.generator && s.statement == "fetch_work_item"), "{:?}", p.statements);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_statistics_is_told_what_to_enable() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    // A database setting outranks the server's command line (where the
    // throwaway server turns function tracking on).
    for sql in ["ALTER DATABASE postgres SET track_functions = 'none'", "DROP EXTENSION IF EXISTS pg_stat_statements"] {
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
    }
    conn.close().await.expect("close");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("out.json");
    let out = coordinator(tmp.path())
        .args(["--local", "1", "--profile", "light", "--duration", "2s", "--database-url", pg.url(), "--json"])
        .arg(&json)
        .output()
        .expect("run coordinator");
    assert!(out.status.success(), "the run itself is unaffected: {}", show(&out));
    let p = read_report(&json).procedures.expect("procedures");
    assert!(!p.functions_tracked && !p.statements_tracked, "{p:?}");
    assert!(p.functions.is_empty() && p.fetches.is_empty(), "{p:?}");
    let advice = p.advice.join("\n");
    assert!(
        advice.contains("track_functions = 'pl'") && advice.contains("CREATE EXTENSION pg_stat_statements"),
        "{advice}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[note] stored-procedure times need track_functions"), "{}", show(&out));
}
