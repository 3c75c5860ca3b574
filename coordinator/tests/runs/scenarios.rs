//! Every scenario end to end: real `coordinator` and `agent` binaries, two
//! local agents, one throwaway Postgres; each run's per-instance audit must
//! pass. Then what only some scenarios show: expected failures counted
//! apart, hot instances shared by three agents, a seeded mix that repeats
//! itself, and the audit catching real defects in a kept schema.

use std::path::Path;

use loadgen_coordinator::db::embedded::EmbeddedPostgres;
use loadgen_coordinator::model::{Audit, RunReport};
use sqlx::Connection;

use crate::support;
use crate::support::{coordinator, read_report, show};

/// Run the coordinator with `args` against `url`, JSON into `tmp/<name>.json`.
fn run(tmp: &Path, url: &str, name: &str, args: &[&str]) -> (std::process::Output, Option<RunReport>) {
    let json = tmp.join(format!("{name}.json"));
    let out = coordinator(tmp)
        .args(["--database-url", url, "--live", "line", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .expect("run coordinator");
    let report = json.exists().then(|| read_report(&json));
    (out, report)
}

fn scenario<'a>(r: &'a RunReport, name: &str) -> &'a loadgen_coordinator::model::ScenarioReport {
    r.scenarios.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name} section in {:?}", r.scenarios))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_with_two_agents_and_passes_its_per_instance_audit() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    // Options that keep a scenario's run short; every scenario in the
    // registry runs, listed here or not.
    let short: &[(&str, &[&str])] = &[
        ("fanout", &["--set", "tasks=2"]),
        ("timers", &["--set", "delay=100ms", "--set", "timers=2"]),
        ("events", &["--set", "interval=50ms"]),
        ("sub-orchestrations", &["--set", "depth=2", "--set", "children=2"]),
        ("continue-as-new", &["--set", "generations=2"]),
        ("retries", &["--set", "backoff=10ms"]),
        ("failures", &["--set", "share=0.3"]),
        ("cancellation", &["--set", "work=300ms", "--set", "after=50ms"]),
        ("large-payloads", &["--set", "max_size=64KB"]),
        ("hot-instances", &["--set", "rate=30/s"]),
    ];
    let cases: Vec<(&str, &[&str])> = loadgen_scenarios::REGISTRY
        .iter()
        .map(|e| (e.info.name, short.iter().find(|(n, _)| *n == e.info.name).map_or(&[][..], |(_, o)| *o)))
        .collect();
    assert!(cases.len() >= 11, "{cases:?}");
    for (name, opts) in &cases {
        let mut args = vec!["--local", "2", "--scenario", name, "--duration", "2s"];
        args.extend_from_slice(opts);
        let (out, report) = run(tmp.path(), pg.url(), name, &args);
        assert!(out.status.success(), "{name}: {}", show(&out));
        let r = report.expect("json");
        let a = &r.audit;
        assert!(a.passed(), "{name}: {:?}", a.problems);
        assert_eq!(a.anomalies, 0, "{name}: {:?}", a.mismatches);
        assert!(a.as_expected > 0 && a.queued == 0, "{name}: {a:?}");
        assert_eq!(r.workload.scenario, *name);
        let c = &r.merged.counts;
        assert_eq!(c.as_expected(), c.launched, "{name}: {c:?}");
        // Instances counted by the agents are the instances the audit found
        // (children and hot instances aside).
        if *name != "hot-instances" {
            assert_eq!(a.by_scenario.values().map(|s| s.instances).sum::<u64>(), c.launched, "{name}");
        }
        match *name {
            "timers" => {
                let t = scenario(&r, "timers");
                assert_eq!(t.history_latencies[0].name, "timer lateness");
                assert_eq!(t.history_latencies[0].latency.count, 2 * t.section.counts.completed);
            }
            "events" => {
                let e = scenario(&r, "events");
                assert_eq!(e.history_latencies[0].latency.count, 3 * e.section.counts.completed);
                assert_eq!(e.facts["events_raised"], 3 * e.section.counts.launched);
            }
            "sub-orchestrations" => {
                let s = &a.by_scenario["sub-orchestrations"];
                assert_eq!((s.children, s.expected_children), (6 * s.instances, 6 * s.instances), "{s:?}");
                assert_eq!(a.instances, 7 * s.instances);
            }
            "failures" => {
                // Failed by design: counted apart, not against the success gate.
                assert!(c.expected_failures > 0 && c.expected_failures == c.failed_application, "{c:?}");
                assert_eq!((c.unexpected_failures(), c.unexpected_outcomes), (0, 0));
                assert!(r.gates.iter().all(|g| g.passed), "{:?}", r.gates);
            }
            "cancellation" => assert!(scenario(&r, "cancellation").facts["cancels_sent"] > 0),
            "large-payloads" => assert!(scenario(&r, "large-payloads").facts["payload_bytes"] > 1000 * c.launched),
            "mixed" => assert!(r.scenarios.len() >= 5, "{:?}", r.scenarios.iter().map(|s| &s.name).collect::<Vec<_>>()),
            _ => {}
        }
    }
    let files: Vec<String> = cases.iter().map(|(n, _)| format!("{n}.json")).collect();
    support::assert_nothing_left(tmp.path(), &files.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_share_hot_instances_and_every_event_is_consumed_once() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let args = [
        "--local",
        "3",
        "--profile",
        "contention",
        "--duration",
        "4s",
        "--runtimes-per-agent",
        "1",
        "--set",
        "rate=60/s",
    ];
    let (out, report) = run(tmp.path(), pg.url(), "hot", &args);
    assert!(out.status.success(), "{}", show(&out));
    let r = report.expect("json");
    let hot = scenario(&r, "hot-instances");
    // Every agent raised events into both instances.
    let raised: u64 = hot.facts.iter().filter(|(k, _)| k.starts_with("raised:")).map(|(_, v)| v).sum();
    assert!(raised > 100, "{:?}", hot.facts);
    assert_eq!(hot.facts["done_sent"], 3 * 2, "each agent said done to each instance");
    // Each instance's output counts exactly the events raised into it.
    assert_eq!(r.audit.by_scenario["hot-instances"].as_expected, 2, "{:?}", r.audit);
    assert_eq!(hot.history_latencies[0].latency.count, raised + 6);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Contention:") && stdout.contains("deadlock(s); lock waits peak"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_mix_starts_the_same_instances_every_time() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let launches = |name: &str, seed: &str| {
        let args = ["--local", "2", "--scenario", "mixed", "--seed", seed, "--iterations", "40", "--duration", "30s"];
        let (out, report) = run(tmp.path(), pg.url(), name, &args);
        assert!(out.status.success(), "{}", show(&out));
        let r = report.expect("json");
        assert_eq!(r.merged.counts.launched, 40, "--iterations bounds the run");
        assert_eq!(r.workload.seed, seed.parse::<u64>().expect("seed"));
        r.scenarios.iter().map(|s| (s.name.clone(), s.section.counts.launched)).collect::<Vec<_>>()
    };
    let first = launches("seed7a", "7");
    assert_eq!(first, launches("seed7b", "7"), "same seed, same per-scenario launches");
    assert_ne!(first, launches("seed8", "8"), "another seed, another mix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_catches_and_names_real_defects_in_a_kept_schema() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let (out, report) = run(
        tmp.path(),
        pg.url(),
        "kept",
        &["--local", "2", "--scenario", "fanout", "--set", "tasks=2", "--duration", "2s", "--keep-schema"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let r = report.expect("json");
    let s = r.schema.clone();
    let id = |agent: u32, seq: u64| format!("{}-{agent}-{seq}", r.run_id);
    let audit = |name: &str| -> (std::process::Output, Audit) {
        let json = tmp.path().join(format!("{name}.json"));
        let out = coordinator(tmp.path())
            .args(["audit", "--schema", &s, "--database-url", pg.url(), "--json"])
            .arg(&json)
            .output()
            .expect("audit");
        let a = serde_json::from_slice(&std::fs::read(&json).expect("audit json")).expect("audit parses");
        (out, a)
    };
    let (out, clean) = audit("clean");
    assert!(out.status.success() && clean.passed(), "{}", show(&out));
    assert_eq!(clean.as_expected, r.merged.counts.launched);
    assert!(clean.exactly_once_checked && clean.processed_twice == 0 && clean.duplicates.is_empty(), "{clean:?}");

    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    for sql in [
        // A lost history row: one ActivityCompleted of instance 0-0.
        format!(
            "DELETE FROM {s}.history WHERE instance_id = '{}' AND event_id = (SELECT max(event_id) FROM {s}.history \
             WHERE instance_id = '{}' AND event_data::jsonb->>'type' = 'ActivityCompleted')",
            id(0, 0),
            id(0, 0)
        ),
        // A second execution of instance 0-1.
        format!(
            "INSERT INTO {s}.executions (instance_id, execution_id, status, output, started_at, completed_at) \
             SELECT instance_id, 2, status, output, started_at, completed_at FROM {s}.executions WHERE instance_id = '{}'",
            id(0, 1)
        ),
        // Instance 0-2's first activity completion processed a second time
        // (what a lock taken over during an acknowledgement leaves).
        format!(
            "INSERT INTO {s}.history (instance_id, execution_id, event_id, event_type, event_data, created_at) \
             SELECT instance_id, execution_id, (SELECT max(event_id) + 1 FROM {s}.history WHERE instance_id = '{i}'), \
                    event_type, event_data, created_at FROM {s}.history \
             WHERE instance_id = '{i}' AND event_data::jsonb->>'type' = 'ActivityCompleted' ORDER BY event_id LIMIT 1",
            i = id(0, 2)
        ),
        // A flipped output on instance 1-0.
        format!("UPDATE {s}.executions SET output = 'fanout:1' WHERE instance_id = '{}'", id(1, 0)),
        // A message left in the orchestrator queue for instance 1-1.
        format!(
            "INSERT INTO {s}.orchestrator_queue (instance_id, work_item, visible_at, created_at) \
             VALUES ('{}', '{{}}', now(), now())",
            id(1, 1)
        ),
        // Instance 1-3's instance row gone, its execution left: what a first
        // turn failed by a permanent ack error leaves (duroxide 0.1.32).
        format!("DELETE FROM {s}.instances WHERE instance_id = '{}'", id(1, 3)),
        // A timer of completed instance 1-2, not yet due: what a cancelled
        // instance leaves; a note, not a defect.
        format!(
            "INSERT INTO {s}.orchestrator_queue (instance_id, work_item, visible_at, created_at) \
             VALUES ('{}', '{{\"TimerFired\": {{\"id\": 2, \"execution_id\": 1}}}}', now() + interval '1 hour', now())",
            id(1, 2)
        ),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let (out, broken) = audit("broken");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let named: Vec<&str> = broken.mismatches.iter().map(|m| m.instance.as_str()).collect();
    let mut want = vec![id(0, 0), id(0, 1), id(0, 2), id(1, 0)];
    want.sort();
    let mut got: Vec<String> = named.iter().map(|s| s.to_string()).collect();
    got.sort();
    assert_eq!(got, want, "{:?}", broken.mismatches);
    let problems_of = |i: String| {
        broken.mismatches.iter().find(|m| m.instance == i).map(|m| m.problems.join("; ")).unwrap_or_default()
    };
    assert!(problems_of(id(0, 0)).contains("1 ActivityCompleted where 2 were expected"), "{broken:?}");
    assert!(problems_of(id(0, 1)).contains("2 execution(s) where 1 were expected"), "{broken:?}");
    assert!(problems_of(id(1, 0)).contains("output \"fanout:1\" where \"fanout:2\" was expected"), "{broken:?}");
    // The duplicate is named by instance, message and history events, and fails the audit.
    assert_eq!((broken.processed_twice, broken.duplicates.len()), (1, 1), "{broken:?}");
    let twice = &broken.duplicates[0];
    assert_eq!(
        (twice.instance.as_str(), twice.kind.as_str(), twice.times),
        (id(0, 2).as_str(), "ActivityCompleted", 2)
    );
    assert!(twice.message.starts_with("ActivityCompleted of event "), "{twice:?}");
    assert!(
        broken
            .problems
            .iter()
            .any(|p| p.starts_with("exactly once: 1 message(s) processed again in 1 instance(s), e.g. ")
                && p.contains(&id(0, 2))),
        "{:?}",
        broken.problems
    );
    assert!(broken.problems.iter().any(|p| p == "1 message(s) left in the queues"), "{:?}", broken.problems);
    assert_eq!((broken.queued, broken.stale_timers), (1, 1), "{broken:?}");
    assert_eq!(broken.orphaned, 1, "{broken:?}");
    let orphan = format!(
        "1 execution(s) without an instance row, invisible to duroxide's client: {} Completed (fanout:2)",
        id(1, 3)
    );
    assert!(broken.problems.contains(&orphan), "{:?}", broken.problems);
    assert!(
        broken.problems.iter().any(|p| p == "1 launched instance(s) missing from the schema"),
        "{:?}",
        broken.problems
    );
    // The agents' completion query still sees such an execution end (a run
    // counts it at once rather than waiting out the drain).
    let provider = duroxide_pg::PostgresProvider::new_with_schema(pg.url(), Some(&s)).await.expect("provider");
    let seen =
        loadgen_common::tracker::Tracker::new(&s).poll(provider.pool(), &[id(1, 3), id(1, 2)]).await.expect("poll");
    let mut ids: Vec<&str> = seen.iter().map(|f| f.instance_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, [id(1, 2), id(1, 3)], "{seen:?}");
    provider.pool().close().await;
    assert!(broken.notes.iter().any(|n| n.starts_with("1 timer(s) of instances that ended")), "{:?}", broken.notes);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("[differs] {}", id(1, 0))), "{stdout}");
    assert!(stdout.contains(&format!("[twice] {} execution 1: ActivityCompleted of event", id(0, 2))), "{stdout}");
    sqlx::query(&format!("DROP SCHEMA {s} CASCADE")).execute(&mut conn).await.expect("drop kept schema");
    conn.close().await.expect("close");
}

/// No livelock, end to end: a message its queue has handed out 7 times and
/// that is still queued after the run (put there mid-run, as a provider that
/// keeps failing one message's acknowledgement leaves it) is seen by the
/// database sampler, named with its instance, and fails the audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_again_and_again_and_never_processed_is_named() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("livelock.json");
    let child = spawn_run(tmp.path(), pg.url(), "6s", &json);
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let s = run_schema(&mut conn, "orchestrator_queue", "attempt_count").await;
    let instance = format!("{}-livelocked", s.trim_start_matches("loadgen_"));
    sqlx::query(&format!(
        "INSERT INTO {s}.orchestrator_queue (instance_id, work_item, visible_at, created_at, attempt_count) \
         VALUES ($1, '{{}}', now() + interval '1 hour', now(), 7)"
    ))
    .bind(&instance)
    .execute(&mut conn)
    .await
    .expect("a message delivered 7 times");
    conn.close().await.expect("close");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = read_report(&json);
    let a = &r.audit;
    assert!(a.livelock_checked && a.livelocked == 1, "{a:?}");
    let m = &a.redelivered_messages[0];
    assert_eq!(
        (m.queue.as_str(), m.instance.as_str(), m.attempts, m.processed),
        ("orchestrator", instance.as_str(), 7, false)
    );
    assert!(
        a.problems
            .iter()
            .any(|p| p.starts_with("no livelock: 1 message(s) delivered 5 times or more and never processed")),
        "{:?}",
        a.problems
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("orchestrator message {} of {instance}: delivered 7 times", m.message_id)),
        "{text}"
    );
    assert!(text.contains("never processed"), "{text}");
}

/// No lost acknowledged work, end to end: instances the generator saw
/// complete during the run, then changed in the store mid-run as a failover
/// that lost acknowledged transactions leaves them (one set back to Running,
/// one with another output, one with its last history event gone), are
/// each named after the run and fail the audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_seen_complete_and_later_undone_are_named() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("lost.json");
    let child = spawn_run(tmp.path(), pg.url(), "8s", &json);
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let s = run_schema(&mut conn, "executions", "completed_at").await;
    // Three instances completed at least 2 s ago: the completion query has read them.
    let mut done: Vec<String> = Vec::new();
    for _ in 0..100 {
        done = sqlx::query_scalar(&format!(
            "SELECT instance_id FROM {s}.executions WHERE status = 'Completed' \
             AND completed_at < now() - interval '2 seconds' ORDER BY completed_at LIMIT 3"
        ))
        .fetch_all(&mut conn)
        .await
        .expect("completed instances");
        if done.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done.len(), 3, "three instances completed within 10 s");
    let changes = [
        format!("UPDATE {s}.executions SET status = 'Running' WHERE instance_id = $1"),
        format!("UPDATE {s}.executions SET output = coalesce(output, '') || ' (rewritten)' WHERE instance_id = $1"),
        format!(
            "DELETE FROM {s}.history WHERE (instance_id, execution_id, event_id) = \
             (SELECT instance_id, execution_id, event_id FROM {s}.history WHERE instance_id = $1 \
              ORDER BY execution_id DESC, event_id DESC LIMIT 1)"
        ),
    ];
    for (sql, id) in changes.iter().zip(&done) {
        let n = sqlx::query(sql).bind(id).execute(&mut conn).await.expect("change an instance").rows_affected();
        assert_eq!(n, 1, "{sql}");
    }
    conn.close().await.expect("close");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let a = read_report(&json).audit;
    assert!(a.acknowledged_checked > 3, "{a:?}");
    assert_eq!((a.lost_acknowledged, a.changed_output, a.shortened_history), (1, 1, 1), "{:?}", a.lost_work);
    let named = |id: &str| a.lost_work.iter().find(|l| l.instance == id).cloned().expect("named");
    let (undone, rewritten, shortened) = (named(&done[0]), named(&done[1]), named(&done[2]));
    assert_eq!((undone.seen.as_str(), undone.finally.as_str()), ("Completed", "Running"));
    assert_eq!((rewritten.differs.as_str(), shortened.differs.as_str()), ("output", "history"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{}: seen Completed during the run, now Running", done[0])), "{text}");
    assert!(text.contains(&format!("{}: seen Completed (output md5 ", done[1])), "{text}");
    assert!(text.contains("have a shorter history now"), "{text}");
}

/// A light run of one local agent on `url`, writing `json`, left running.
pub(crate) fn spawn_run(dir: &Path, url: &str, duration: &str, json: &Path) -> std::process::Child {
    coordinator(dir)
        .args(["--local", "1", "--profile", "light", "--duration", duration, "--database-url", url, "--json"])
        .arg(json)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start coordinator")
}

/// The running run's schema, once its `table` has `column` (its migrations
/// got that far); within 10 s.
pub(crate) async fn run_schema(conn: &mut sqlx::PgConnection, table: &str, column: &str) -> String {
    for _ in 0..100 {
        let found = sqlx::query_scalar::<_, String>(
            "SELECT table_schema::text FROM information_schema.columns WHERE table_schema LIKE 'loadgen_%' \
             AND table_name = $1 AND column_name = $2 LIMIT 1",
        )
        .bind(table)
        .bind(column)
        .fetch_optional(&mut *conn)
        .await
        .expect("look for the run's schema");
        if let Some(s) = found {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no run schema with {table}.{column} within 10 s")
}
