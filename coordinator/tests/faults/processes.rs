//! Faults with real processes: an agent killed or frozen mid-run, a
//! coordinator killed mid-run. Each test bounds every wait.

use crate::support;

use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::support::{coordinator, read_report};
use loadgen_common::process::{SIGCONT, SIGKILL, SIGSTOP, signal};
use loadgen_coordinator::db::embedded::{EmbeddedPostgres, Shutdown};
use sqlx::Connection;

/// Spawn the coordinator with piped stderr; lines arrive on the receiver.
fn spawn_coordinator(tmp: &std::path::Path, args: &[&str]) -> (Child, Receiver<String>) {
    let mut child =
        coordinator(tmp).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn coordinator");
    let rx = support::stderr_lines(&mut child);
    (child, rx)
}

/// Wait (bounded) for a stderr line containing `needle`; returns when it came.
fn wait_for_line(rx: &Receiver<String>, needle: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no line with {needle:?} within {within:?}"));
        if line.contains(needle) {
            return Instant::now();
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "process did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of this coordinator's local agents (they inherit its TMPDIR).
fn local_agent_pids(tmp: &std::path::Path) -> Vec<u32> {
    let needle = format!("TMPDIR={}", tmp.display());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains("agent\0--listen") && String::from_utf8_lossy(&env).contains(&needle)
        {
            pids.push(pid);
        }
    }
    pids.sort();
    pids
}

#[test]
fn a_killed_agent_is_noticed_at_once_and_its_orchestrations_are_finished_by_the_others() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("loss.json");
    let json_arg = json.display().to_string();
    let (mut child, rx) = spawn_coordinator(
        tmp.path(),
        &["--local", "3", "--profile", "light", "--duration", "10s", "--json", &json_arg],
    );
    let first_line = wait_for_line(&rx, "orch/s", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    let pids = local_agent_pids(tmp.path());
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(signal(pids[1], SIGKILL));
    // The first live line is printed 1.3 s after the common start.
    let killed_at_s = 1.3 + first_line.elapsed().as_secs_f64();
    let status = wait_exit(&mut child, Duration::from_secs(180));
    assert_eq!(status.code(), Some(4), "a run with a lost agent is degraded");
    let r = read_report(&json);
    assert_eq!(r.lost_agents.len(), 1, "{:?}", r.lost_agents);
    let lost = &r.lost_agents[0];
    // Noticed within a second of the kill (the stream breaks at once).
    assert!((lost.at_s - killed_at_s).abs() < 1.5, "lost at {:.2}s, killed at ~{killed_at_s:.2}s", lost.at_s);
    // Everything it started was finished by the other runtimes.
    assert!(lost.instances_in_db >= lost.last_reported.launched && lost.instances_in_db > 0, "{lost:?}");
    assert_eq!((lost.still_running, lost.failed_in_db), (0, 0), "{lost:?}");
    assert_eq!(lost.completed_in_db, lost.instances_in_db, "{lost:?}");
    assert!(r.agents.iter().filter(|a| a.lost).count() == 1);
    let m = &r.merged.counts;
    assert_eq!(m.completed, m.launched);
    assert!(r.audit.passed(), "{:?}", r.audit.problems);
    assert_eq!(r.audit.terminal_once, r.audit.instances);
    assert!(r.gates.iter().any(|g| g.name == "agents" && !g.passed));
    assert!(r.gates.iter().filter(|g| g.name != "agents").all(|g| g.passed), "{:?}", r.gates);
    support::assert_nothing_left(tmp.path(), &["loss.json"]);
}

#[test]
fn a_frozen_agent_is_noticed_within_the_silence_bound() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("frozen.json");
    let json_arg = json.display().to_string();
    let (mut child, rx) = spawn_coordinator(
        tmp.path(),
        &["--local", "2", "--profile", "light", "--duration", "12s", "--on-agent-loss", "abort", "--json", &json_arg],
    );
    wait_for_line(&rx, "orch/s", Duration::from_secs(60));
    let pids = local_agent_pids(tmp.path());
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(signal(pids[0], SIGSTOP));
    let frozen = Instant::now();
    let noticed = wait_for_line(&rx, "lost after", Duration::from_secs(30));
    let took = noticed.duration_since(frozen);
    // Silence bound 5 s, checked once a second, after at most 1 s of progress lag.
    assert!(took >= Duration::from_secs(4) && took <= Duration::from_secs(8), "noticed after {took:?}");
    // abort: the other agent is told to stop starting orchestrations at once
    // (its drain may still wait for instances the frozen runtime had locked).
    let stopped = wait_for_line(&rx, "coordinator asked to stop", Duration::from_secs(5));
    assert!(stopped.duration_since(noticed) < Duration::from_secs(2));
    // Let it go so the coordinator's teardown can stop it normally.
    signal(pids[0], SIGCONT);
    let status = wait_exit(&mut child, Duration::from_secs(180));
    assert_eq!(status.code(), Some(4));
    let r = read_report(&json);
    assert_eq!(r.lost_agents.len(), 1);
    assert!(r.lost_agents[0].reason.contains("silent"), "{:?}", r.lost_agents[0]);
    support::assert_nothing_left(tmp.path(), &["frozen.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_loses_its_coordinator_stops_loading_the_database_within_its_lease() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let mut agent = support::spawn_agent(pg.url(), &["--run-once"]);
    let (mut child, rx) = spawn_coordinator(
        tmp.path(),
        &[
            "--agents",
            &agent.address,
            "--database-url",
            pg.url(),
            "--profile",
            "light",
            "--duration",
            "60s",
            "--keep-schema",
        ],
    );
    wait_for_line(&rx, "orch/s", Duration::from_secs(60));
    child.kill().expect("kill -9 the coordinator");
    let killed = Instant::now();
    child.wait().expect("reap");
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let count = || "SELECT count(*) FROM instances".to_string();
    let schema: String =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'loadgen\\_%' LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .expect("the run's schema");
    sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.expect("search path");
    // Lease 3 s (+0.25 s check, +1 s progress tick): no start after that.
    tokio::time::sleep(Duration::from_millis(4500).saturating_sub(killed.elapsed())).await;
    let n1: i64 = sqlx::query_scalar(&count()).fetch_one(&mut conn).await.expect("count");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n2: i64 = sqlx::query_scalar(&count()).fetch_one(&mut conn).await.expect("count");
    assert_eq!(n1, n2, "the agent kept starting orchestrations after losing its coordinator");
    // --run-once: it releases its runtimes and exits.
    let status = wait_exit(&mut agent.child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("activity");
    assert_eq!(others, 0, "connections left after the agent stopped");
    conn.close().await.expect("close");
}

/// What a run across a Postgres restart left: its exit code, report, how
/// many instances started before the outage and completed after it, and the
/// stored message of every failed instance.
struct Restarted {
    code: Option<i32>,
    report: loadgen_coordinator::model::RunReport,
    spanned: i64,
    failures: Vec<String>,
}

/// A light run on two local agents with Postgres restarted (`how`, 2 s down)
/// a second into it; the schema is kept to read it back.
async fn run_across_a_restart(how: Shutdown) -> Restarted {
    let mut pg = EmbeddedPostgres::start().await.expect("throwaway postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("restart.json");
    let json_arg = json.display().to_string();
    let url = pg.url().to_string();
    let args = [
        "--local",
        "2",
        "--profile",
        "light",
        "--duration",
        "12s",
        "--database-url",
        &url,
        "--json",
        &json_arg,
        "--keep-schema",
    ];
    let (mut child, rx) = spawn_coordinator(tmp.path(), &args);
    wait_for_line(&rx, "orch/s", Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = chrono::Utc::now();
    pg.restart(Duration::from_secs(2), how).await.expect("restart postgres");
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(240))).await.expect("join");
    let report = read_report(&json);
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let s = &report.schema;
    // When the server came back: its postmaster's start (the runtimes may
    // finish work before the test sees the server ready, under load).
    let started: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT pg_postmaster_start_time()").fetch_one(&mut conn).await.expect("start time");
    // Work in flight across the outage: started before it, completed after.
    let spanned: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {s}.executions WHERE started_at < $1 AND completed_at > $2"))
            .bind(stopped)
            .bind(started)
            .fetch_one(&mut conn)
            .await
            .expect("spanned");
    let failures: Vec<String> =
        sqlx::query_scalar(&format!("SELECT coalesce(output, '') FROM {s}.executions WHERE status = 'Failed'"))
            .fetch_all(&mut conn)
            .await
            .expect("failures");
    sqlx::query(&format!("DROP SCHEMA {s} CASCADE")).execute(&mut conn).await.expect("drop");
    conn.close().await.expect("close");
    let c = &report.merged.counts;
    eprintln!("{how:?} restart: exit {:?}, {spanned} spanned the outage, {c:?}, failures {failures:?}", status.code());
    support::assert_nothing_left(tmp.path(), &["restart.json"]);
    Restarted { code: status.code(), report, spanned, failures }
}

/// The message duroxide-pg 0.1.38 fails a turn with when a fast shutdown
/// ends its session (SQLSTATE 57P01, taken for a permanent error).
const ADMIN_SHUTDOWN: &str = "terminating connection due to administrator command";

/// What every restart must leave: nothing lost, duplicated or stuck, and
/// work that really waited out the outage; the gates that failed. The audit
/// must pass, except for executions left without an instance row by that
/// 57P01 error (a first turn failed; duroxide 0.1.32 commits the failure
/// without the orchestration's name, so no instance row is made), which it
/// must name.
fn accounted(r: &Restarted) -> Vec<String> {
    let c = &r.report.merged.counts;
    let a = &r.report.audit;
    assert!(r.spanned > 0, "no instance started before the outage and completed after it");
    assert_eq!(c.unfinished, 0, "every launched instance ended: {c:?}");
    assert_eq!(c.launched, c.completed + c.failed(), "{c:?}");
    if a.orphaned == 0 {
        assert!(a.passed(), "nothing lost, duplicated or left queued: {:?}", a.problems);
    } else {
        let orphans = format!("{} execution(s) without an instance row", a.orphaned);
        let missing = format!("{} launched instance(s) missing from the schema", a.orphaned);
        for p in &a.problems {
            assert!(p == &missing || (p.starts_with(&orphans) && p.contains(ADMIN_SHUTDOWN)), "{:?}", a.problems);
        }
        assert!(a.problems.iter().any(|p| p.starts_with(&orphans)), "{:?}", a.problems);
    }
    assert_eq!((a.anomalies, a.not_terminal, a.queued), (0, 0, 0), "{a:?}");
    assert_eq!(a.completed + a.failed, a.instances);
    assert!(r.report.lost_agents.is_empty(), "{:?}", r.report.lost_agents);
    let failed: Vec<String> = r.report.gates.iter().filter(|g| !g.passed).map(|g| g.name.clone()).collect();
    assert_eq!(r.code, Some(if failed.is_empty() { 0 } else { 1 }), "{failed:?}");
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_crash_restart_mid_run_completes_every_instance() {
    let r = run_across_a_restart(Shutdown::Immediate).await;
    let failed_gates = accounted(&r);
    assert!(r.report.audit.passed(), "{:?}", r.report.audit.problems);
    // Connections reset: the provider retries, every launched instance completes.
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.report.merged.counts.completed, r.report.merged.counts.launched);
    // Start calls that met the outage failed and are counted, nothing else.
    assert!(failed_gates.iter().all(|g| g == "start errors"), "{failed_gates:?}");
    // The crash reset the server's statistics: seen, and the commits summed
    // across it (taken across the reset they read 1.8 to 3 per orchestration
    // instead of the workload's 10 or more).
    let d = &r.report.db_load;
    assert!(d.stats_resets >= 1, "{d:?}");
    assert!(d.commits_per_orchestration >= 6.0, "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_postgres_restart_mid_run_is_accounted_for_failure_by_failure() {
    let r = run_across_a_restart(Shutdown::Fast).await;
    let failed_gates = accounted(&r);
    // A fast shutdown ends sessions with SQLSTATE 57P01, which duroxide-pg
    // 0.1.38 takes for a permanent error: a turn being acknowledged at that
    // moment fails its instance. Any failure must be exactly that one.
    for f in &r.failures {
        assert!(f.starts_with("infrastructure:") && f.contains(ADMIN_SHUTDOWN), "{f}");
    }
    let c = &r.report.merged.counts;
    assert_eq!(c.failed(), c.failed_infrastructure, "{c:?}");
    assert_eq!(c.failed_infrastructure, r.failures.len() as u64);
    let allowed = ["start errors", "success rate", "infrastructure failures", "correctness audit"];
    assert!(r.report.audit.orphaned > 0 || failed_gates.iter().all(|g| g != "correctness audit"), "{failed_gates:?}");
    assert!(failed_gates.iter().all(|g| allowed.contains(&g.as_str())), "{failed_gates:?}");
}
