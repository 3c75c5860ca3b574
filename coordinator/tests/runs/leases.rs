//! A lease handed out already expired, end to end: mid-run, an instance
//! lock appears whose expiry lies a minute in the past (what a fetch that
//! read its clock before a long wait, or a worker whose clock is behind,
//! writes), then is renewed late (revived) and renewed earlier (its deadline
//! moved back), as duroxide-pg's renewal before 0.1.38 could. The run
//! schema's triggers note each; the run names them and fails the audit; the
//! leases the runtimes themselves took and renewed are not named.

use sqlx::Connection;

use crate::scenarios::{run_schema, spawn_run};
use crate::support::{read_report, show};
use loadgen_coordinator::db::embedded::EmbeddedPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_handed_out_already_expired_is_named() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("leases.json");
    let child = spawn_run(tmp.path(), pg.url(), "6s", &json);
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let s = run_schema(&mut conn, "instance_locks", "locked_at").await;
    // Once the load runs (the triggers are added before it starts).
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let instance = format!("{}-expired-lease", s.trim_start_matches("loadgen_"));
    sqlx::query(&format!(
        "INSERT INTO {s}.instance_locks (instance_id, lock_token, locked_until, locked_at) \
         VALUES ($1, 'lock_forged-by-the-test', \
                 (extract(epoch FROM now()) * 1000)::bigint - 60000, (extract(epoch FROM now()) * 1000)::bigint - 65000)"
    ))
    .bind(&instance)
    .execute(&mut conn)
    .await
    .expect("an instance lock expired a minute ago");
    // Then renewed as duroxide-pg before 0.1.38 could: revived a minute
    // late, then moved 30 s earlier.
    for ms in [60_000, 30_000] {
        sqlx::query(&format!(
            "UPDATE {s}.instance_locks SET locked_until = (extract(epoch FROM now()) * 1000)::bigint + {ms} \
             WHERE lock_token = 'lock_forged-by-the-test'"
        ))
        .execute(&mut conn)
        .await
        .expect("a renewal");
    }
    conn.close().await.expect("close");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let a = read_report(&json).audit;
    assert_eq!((a.expired_leases, a.bad_renewals), (1, 2), "{:?}", a.expired_lease_named);
    let kinds: Vec<&str> = a.expired_lease_named.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["handed_out", "revived", "shortened"]);
    let (revived, shortened) = (&a.expired_lease_named[1], &a.expired_lease_named[2]);
    assert!(revived.by_ms >= 59_000 && (29_000..31_000).contains(&shortened.by_ms), "{revived:?} {shortened:?}");
    let l = &a.expired_lease_named[0];
    assert_eq!(
        (l.queue.as_str(), l.instance.as_str(), l.token.as_str()),
        ("orchestrator", instance.as_str(), "lock_forged-by-the-test")
    );
    assert!(l.kind == "handed_out" && (59_000..70_000).contains(&l.by_ms) && l.seen_s > 0.0, "{l:?}");
    assert!(
        a.problems.iter().any(|p| p.starts_with("no expired lease: 1 lease(s) handed out already expired"))
            && a.problems.iter().any(|p| p.starts_with("no expired lease: 2 renewal(s) revived an instance lock")),
        "{:?}",
        a.problems
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "orchestrator lease of {instance} (lock token lock_forged-by-the-test): handed out already expired"
        )),
        "{text}"
    );
}
