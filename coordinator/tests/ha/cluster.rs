//! The cluster itself, driven directly.

use std::time::{Duration, Instant};

use loadgen_coordinator::db::ha::{HaCluster, Replication};
use sqlx::Connection;

/// Insert a row through the write endpoint, retrying (bounded) while the
/// leader changes; how long writes were unavailable.
async fn write_through(url: &str, value: i64) -> Duration {
    let started = Instant::now();
    loop {
        let done = async {
            let mut c = sqlx::PgConnection::connect(url).await?;
            sqlx::query("insert into t values ($1)").bind(value).execute(&mut c).await?;
            c.close().await
        };
        if tokio::time::timeout(Duration::from_secs(5), done).await.is_ok_and(|r| r.is_ok()) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no write for 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_survives_a_switchover_and_a_failover_and_leaves_nothing() {
    let mut ha = HaCluster::start(Replication::Sync, 2).await.expect("the HA cluster starts");
    let url = ha.url().to_string();
    let scope_dir = {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query("create table t (v bigint)").execute(&mut c).await.expect("table");
        sqlx::query_scalar::<_, String>("select current_setting('data_directory')")
            .fetch_one(&mut c)
            .await
            .expect("dir")
    };
    write_through(&url, 1).await;
    let first = ha.leader().await.expect("a leader");
    let (old, new) = ha.switchover(false).await.expect("switchover");
    assert_eq!(old, first);
    let gap = write_through(&url, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ha.leader().await.as_deref() != Some(new.as_str()) {
        assert!(Instant::now() < deadline, "{new} never led");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("switchover {old} -> {new}: writes back after {gap:?}");
    // The old leader follows again (seconds); until then a synchronous
    // cluster has no standby it may promote.
    ha.wait_healthy(Duration::from_secs(60)).await.expect("healthy after the switchover");
    // Synchronous replication: what was acknowledged survives a failover.
    let killed = ha.kill_leader().await.expect("failover");
    assert_eq!(killed, new);
    let gap = write_through(&url, 3).await;
    eprintln!("failover from {killed}: writes back after {gap:?}");
    let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
    let rows: Vec<i64> = sqlx::query_scalar("select v from t order by v").fetch_all(&mut c).await.expect("rows");
    assert_eq!(rows, vec![1, 2, 3], "acknowledged rows lost");
    c.close().await.expect("close");
    let root = std::path::Path::new(&scope_dir).ancestors().nth(2).expect("cluster dir").to_path_buf();
    let scope = root.file_name().expect("name").to_string_lossy().into_owned();
    ha.stop();
    assert!(!root.exists(), "{} left behind", root.display());
    assert!(super::support::processes_mentioning(&scope).is_empty(), "processes of {scope} left");
}
