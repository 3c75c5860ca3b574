//! An agent's own endpoint (`agent --metrics-listen`): duroxide's runtime
//! and provider metrics, each runtime's counters and the agent's slice,
//! scraped by a real Prometheus during a run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use loadgen_coordinator::db::embedded::EmbeddedPostgres;

use super::prometheus::{Prometheus, get};
use super::support::{coordinator, free_port, spawn_agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_serves_duroxides_metrics_per_runtime_during_a_run() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let agent = spawn_agent(pg.url(), &["--metrics-listen", &format!("127.0.0.1:{port}")]);
    // Idle: the agent says so.
    let (code, idle) = get(port, "/metrics").expect("scrape");
    assert_eq!(code, 200, "{idle}");
    assert!(idle.contains("phase=\"idle\"") && idle.ends_with("# EOF\n"), "{idle}");
    let prom = Prometheus::scraping(&format!("127.0.0.1:{port}"));
    let mut child = coordinator(tmp.path())
        .args([
            "--agents",
            &agent.address,
            "--database-url",
            pg.url(),
            "--duration",
            "12s",
            "--runtimes-per-agent",
            "2",
        ])
        .args(["--live", "line"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coordinator");
    let wanted = [
        "loadgen_agent_info{phase=\"running\"}",
        "loadgen_agent_runtimes == 2",
        "loadgen_agent_runtime_orchestrations_completed_total{runtime=\"1\"} > 0",
        "sum(duroxide_orchestration_completions_total) > 0",
        "sum(duroxide_activity_executions_total{outcome=\"success\"}) > 0",
        "duroxide_orchestration_duration_seconds_count > 0",
        "loadgen_agent_activities_executed_total > 0",
        "loadgen_agent_share > 0",
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<&str> = wanted.to_vec();
    while !missing.is_empty() {
        assert!(Instant::now() < deadline, "never seen during the run: {missing:?}");
        assert!(child.try_wait().expect("wait").is_none(), "the run ended before Prometheus saw {missing:?}");
        missing.retain(|q| prom.query(q).is_empty());
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert_eq!(status.code(), Some(0));
    let (_, after) = get(port, "/metrics").expect("scrape");
    assert!(after.contains("phase=\"idle\""), "released, the agent is idle again: {after}");
    drop(agent);
}
