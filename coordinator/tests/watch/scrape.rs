//! A chaos run scraped by a real Prometheus: every dashboard panel's query
//! returns data while the run goes, the fault shows as it happens, and the
//! final counters equal the run's JSON.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::prometheus::Prometheus;
use super::support::{self, coordinator, read_report};

/// Every PromQL query of the dashboard (panels and annotations), with
/// Grafana's interval variables as a 1 s scrape makes them.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/loadgen-dashboard.json");
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("json");
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr").replace("$__rate_interval", "5s").replace("$__interval", "5s");
            out.push((p["title"].as_str().unwrap_or("?").to_string(), expr));
        }
    }
    assert!(out.len() >= 12, "{out:?}");
    out
}

fn wait_exit(child: &mut Child, bound: Duration) -> Option<i32> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the coordinator did not finish within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_real_prometheus_sees_every_panel_the_fault_and_the_final_totals() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = support::free_port();
    let prom = Prometheus::scraping(&format!("127.0.0.1:{port}"));
    let faults = tmp.path().join("faults.toml");
    // Deadlocks answered to every 5th acknowledgement: the provider retries
    // them, and the retries must show while the run goes.
    let schedule = "[[fault]]\nkind = \"sqlstate\"\ncode = \"40P01\"\nprocedure = \"ack_orchestration_item\"\nevery = 5\nat = \"6s\"\nduration = \"3s\"\n";
    std::fs::write(&faults, schedule).expect("faults");
    let json = tmp.path().join("run.json");
    let mut child = coordinator(tmp.path())
        .args(["--local", "2", "--profile", "light", "--duration", "20s", "--live", "line", "--linger", "4s"])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--faults")
        .arg(&faults)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coordinator");
    // Well into the load, after the fault: every panel has data.
    let deadline = Instant::now() + Duration::from_secs(120);
    while prom.query("loadgen_run_elapsed_seconds > 13").is_empty() {
        assert!(Instant::now() < deadline, "the run never reached 13 s in Prometheus");
        assert!(child.try_wait().expect("wait").is_none(), "the coordinator ended before 13 s were scraped");
        std::thread::sleep(Duration::from_millis(500));
    }
    let empty: Vec<String> = dashboard_queries()
        .into_iter()
        .filter(|(_, q)| prom.query(q).is_empty())
        .map(|(title, q)| format!("{title}: {q}"))
        .collect();
    assert!(empty.is_empty(), "dashboard queries without data during the run: {empty:#?}");
    // The fault was in effect while it lasted, and is over now.
    assert_eq!(prom.value("max_over_time(loadgen_fault_active{kind=\"sqlstate\"}[1m])"), 1.0);
    assert_eq!(prom.value("loadgen_fault_active{kind=\"sqlstate\"}"), 0.0);
    assert_eq!(prom.value("loadgen_faults_applied_total{kind=\"sqlstate\"}"), 1.0);
    let retried = prom.query("loadgen_provider_retries_total{error=~\"ack_orchestration_item/retried.*\"} > 0");
    assert!(!retried.is_empty(), "the provider's retries of the deadlocks are not live");
    let live_completed = prom.value("sum(loadgen_orchestrations_completed_total)");
    assert!(live_completed > 0.0);

    assert_eq!(wait_exit(&mut child, Duration::from_secs(120)), Some(0));
    let r = read_report(&json);
    // The last scrapes (during --linger) hold the result's totals exactly
    // (read as the last sample: the target is gone, its series are stale).
    let c = &r.merged.counts;
    assert_eq!(prom.value("last_over_time(loadgen_run_finished[1m])"), 1.0);
    assert_eq!(prom.value("sum(last_over_time(loadgen_orchestrations_completed_total[1m]))"), c.completed as f64);
    assert_eq!(prom.value("sum(last_over_time(loadgen_orchestrations_started_total[1m]))"), c.launched as f64);
    assert_eq!(prom.value("last_over_time(loadgen_activities_executed_total[1m])"), c.activities as f64);
    let p99_us = r.merged.headline_latency().p99_us;
    let exact = prom.value("last_over_time(loadgen_latency_quantile_seconds{quantile=\"0.99\"}[1m])");
    assert!((exact * 1e6 - p99_us as f64).abs() < 1.0, "exact p99 {exact} s against the JSON's {p99_us} us");
    // From the buckets: within the bucket the JSON's p99 falls in.
    let bounds = loadgen_coordinator::exporter::figures::BOUNDS_US;
    let hi = bounds.iter().copied().find(|&b| b >= p99_us).unwrap_or(u64::MAX);
    let lo = bounds.iter().copied().rev().find(|&b| b < p99_us).unwrap_or(0);
    let from_buckets = prom.value("histogram_quantile(0.99, last_over_time(loadgen_latency_seconds_bucket[1m]))") * 1e6;
    assert!(
        from_buckets >= lo as f64 - 1.0 && from_buckets <= hi as f64 + 1.0,
        "p99 from the buckets {from_buckets} us is outside ({lo}, {hi}] around the JSON's {p99_us} us"
    );
    support::assert_nothing_left(tmp.path(), &["faults.toml", "run.json"]);
}

#[test]
fn a_port_already_taken_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let started = Instant::now();
    let out = coordinator(tmp.path())
        .args(["--local", "1", "--duration", "5s", "--metrics-listen"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("coordinator");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", support::show(&out));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("--metrics-listen 127.0.0.1:{port}: cannot listen")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "it started something first");
    let bad =
        coordinator(tmp.path()).args(["--local", "1", "--metrics-listen", "nowhere"]).output().expect("coordinator");
    assert_eq!(bad.status.code(), Some(2), "{}", support::show(&bad));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("give host:port"), "{}", support::show(&bad));
    support::assert_nothing_left(tmp.path(), &[]);
}
