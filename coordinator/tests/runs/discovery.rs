//! Discovery: `--expect-agents N` waits (with progress) for agents that come
//! up late, and fails with one clear line when too few answer in time.

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{coordinator, free_port, read_report, show, spawn_agent, spawn_agent_at};
use loadgen_coordinator::db::embedded::EmbeddedPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_agents_waits_for_a_late_agent_and_then_runs_with_all() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("late.json");
    let early = spawn_agent(pg.url(), &[]);
    let late_address = format!("127.0.0.1:{}", free_port());
    let agents = format!("{},{late_address}", early.address);
    let mut child = coordinator(tmp.path())
        .args(["--agents", &agents, "--expect-agents", "2", "--agents-timeout", "60s"])
        .args(["--database-url", pg.url(), "--duration", "3s", "--json", &format!("-,{}", json.display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("coordinator");
    let rx = crate::support::stderr_lines(&mut child);
    let mut stdout = child.stdout.take().expect("stdout");
    let stdout_text = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    // The coordinator reports that it waits, and on whom.
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a progress line");
        if line.contains("waiting for agents") {
            break line;
        }
    };
    assert!(waiting.contains("1 of 2 agent(s) answered") && waiting.contains(&late_address), "{waiting}");
    // Only now does the second agent come up.
    let _late = spawn_agent_at(&late_address, pg.url(), &[], None);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "coordinator did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    assert!(status.success(), "{status:?}: {}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("2 agent(s) answered after")), "{}", lines.join("\n"));
    let r = read_report(&json);
    support::assert_consistent(&r, 2);
    // --json - : stdout is the same JSON and nothing else (the summary went to stderr).
    let stdout_text = stdout_text.join().expect("reader").expect("stdout");
    let from_stdout: loadgen_coordinator::model::RunReport =
        serde_json::from_str(&stdout_text).expect("stdout is JSON");
    assert_eq!(from_stdout.run_id, r.run_id);
    assert_eq!(from_stdout.merged.counts.completed, r.merged.counts.completed);
    assert!(lines.iter().any(|l| l.contains("p99")), "summary on stderr");
    let addresses: Vec<_> = r.agents.iter().map(|a| a.address.clone()).collect();
    assert_eq!(addresses, [early.address.clone(), late_address]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_agents_gives_up_after_the_timeout_naming_what_is_missing() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = spawn_agent(pg.url(), &[]);
    let missing = format!("127.0.0.1:{}", free_port());
    let agents = format!("{},{missing},no-such-agent.invalid:7000", agent.address);
    let started = Instant::now();
    let out = coordinator(tmp.path())
        .args(["--agents", &agents, "--expect-agents", "3", "--agents-timeout", "3s", "--database-url", pg.url()])
        .output()
        .expect("coordinator");
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("coordinator: ") && last.contains("only 1 of the 3 expected agents answered within 3s"),
        "{err}"
    );
    assert!(last.contains(&missing) && last.contains("no-such-agent.invalid:7000 not resolvable"), "{last}");
    assert!(err.contains("waiting for agents"), "progress while waiting: {err}");
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    support::assert_nothing_left(tmp.path(), &[]);

    // Without --expect-agents an unresolvable name fails at once.
    let out = coordinator(tmp.path())
        .args(["--agents", "no-such-agent.invalid:7000", "--database-url", pg.url()])
        .output()
        .expect("coordinator");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot resolve"), "{}", show(&out));
    // And --expect-agents 0 is bad input.
    let out = coordinator(tmp.path())
        .args(["--agents", &agent.address, "--expect-agents", "0", "--database-url", pg.url()])
        .output()
        .expect("coordinator");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}
