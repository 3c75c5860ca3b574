//! `coordinator cleanup`: a coordinator killed with SIGKILL cannot drop its
//! schema; cleanup finds it, says what it holds, and drops it only when told.

use std::process::Stdio;
use std::time::{Duration, Instant};

use loadgen_coordinator::db::cleanup::CleanupReport;
use loadgen_coordinator::db::embedded::EmbeddedPostgres;
use sqlx::Connection;

use crate::support::{coordinator, processes_mentioning, show};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_left_by_a_killed_coordinator_is_listed_then_dropped() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = coordinator(tmp.path())
        .args(["--local", "1", "--profile", "light", "--duration", "60s", "--live", "line", "--database-url", pg.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coordinator");
    let rx = crate::support::stderr_lines(&mut child);
    // "run <id> on schema loadgen_<id>: ...", then progress.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut run_id = None;
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else { continue };
        if let Some(rest) = line.strip_prefix("run ") {
            run_id = rest.split_whitespace().next().map(str::to_string);
        }
        if run_id.is_some() && line.contains("orch/s") {
            break;
        }
    }
    let run_id = run_id.expect("the run announced itself");
    loadgen_common::process::signal(child.id(), loadgen_common::process::SIGKILL);
    let _ = child.wait();
    // Its agent dies with it (parent-death signal); nothing may go on loading.
    let needle = tmp.path().display().to_string();
    let until = Instant::now() + Duration::from_secs(20);
    while !processes_mentioning(&needle).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(processes_mentioning(&needle).is_empty(), "{:?}", processes_mentioning(&needle));

    let cleanup = |extra: &[&str], json: &str| -> (std::process::Output, CleanupReport) {
        let path = tmp.path().join(json);
        let out = coordinator(tmp.path())
            .args(["cleanup", "--database-url", pg.url(), "--json"])
            .arg(&path)
            .args(extra)
            .output()
            .expect("cleanup");
        let report = serde_json::from_slice(&std::fs::read(&path).expect("json")).expect("report parses");
        (out, report)
    };
    let schema = format!("loadgen_{run_id}");
    let (out, listed) = cleanup(&[], "list.json");
    assert!(out.status.success(), "{}", show(&out));
    let left = listed.schemas.iter().find(|s| s.schema == schema).unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!((left.run_id.as_deref(), left.profile.as_deref()), (Some(run_id.as_str()), Some("light")));
    assert!(left.instances > 0 && left.bytes > 0 && !left.dropped, "{left:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&schema), "{}", show(&out));

    // Chosen but not confirmed: listed as what would go, nothing dropped.
    let (out, dry) = cleanup(&["--run", &run_id], "dry.json");
    assert!(out.status.success(), "{}", show(&out));
    assert!(dry.schemas.iter().any(|s| s.schema == schema && s.selected && !s.dropped));
    // Killed seconds ago, it still looks in use: kept unless forced.
    assert!(dry.schemas.iter().any(|s| s.schema == schema && s.active), "{dry:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("chosen, in use: kept (add --force --yes"), "{}", show(&out));
    let bad = coordinator(tmp.path()).args(["cleanup", "--database-url", pg.url(), "--yes"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));

    let (out, dropped) = cleanup(&["--run", &run_id, "--yes", "--force"], "drop.json");
    assert!(out.status.success(), "{}", show(&out));
    assert!(dropped.schemas.iter().any(|s| s.schema == schema && s.dropped), "{dropped:?}");
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&schema)
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(n, 0, "schema dropped");
    conn.close().await.expect("close");
}
