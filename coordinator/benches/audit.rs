//! The per-instance correctness audit at scale (`cargo bench -p
//! loadgen-coordinator --bench audit`; needs the PostgreSQL server binaries,
//! as the throwaway database does). A throwaway Postgres gets a migrated run
//! schema holding `AUDIT_INSTANCES` (default 100,000) completed `fanout`
//! instances with tasks=3 from 4 agents, loaded set-based in a few
//! statements, with the rows duroxide-pg writes for them (history events
//! serialized by duroxide itself). The audit the coordinator runs after a run
//! is then timed three times, with its SQL read and its pure judging timed
//! apart, and must pass; three corrupted instances must then be named, and
//! only they. Target: the whole audit of 100,000 instances under 30 s.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use duroxide::{Event, EventKind};
use loadgen_coordinator::db::RunDb;
use loadgen_coordinator::db::audit::{self, AuditInput, AuditOutcome, query};
use loadgen_coordinator::db::embedded::EmbeddedPostgres;
use loadgen_scenarios::{At, Context, Options, build};

const RUN: &str = "bench001";
const AGENTS: u32 = 4;
const TASKS: u64 = 3;
const DEFAULT_INSTANCES: u64 = 100_000;
const ROUNDS: usize = 3;
const TARGET: Duration = Duration::from_secs(30);
/// Stand-ins in the serialized events for the instance id and the timestamp
/// (13 digits like a real millisecond timestamp).
const ID_MARK: &str = "@ID@";
const TS_MARK: u64 = 9_999_999_999_999;
/// The first instance's start; instance n starts 2 ms after instance n-1.
const T0_MS: i64 = 1_760_000_000_000;
/// Instances whose rows are interleaved as concurrent acks would write them.
const WINDOW: i64 = 1000;

/// One history event of a fanout instance, as a template.
struct Template {
    event_id: i64,
    json: String,
    /// Milliseconds after the instance's start.
    offset_ms: i64,
    /// The orchestration turn that appends it (0: start and schedule, 1: join).
    turn: i32,
}

/// The 8 events of a completed fanout instance with tasks=3, serialized by
/// duroxide's own `Event` (what duroxide-pg stores in `history.event_data`).
fn templates(input: &str) -> Vec<Template> {
    let event = |event_id: u64, source: Option<u64>, kind: EventKind, offset_ms: i64, turn: i32| {
        let mut e = Event::with_event_id(event_id, ID_MARK, 1, source, kind);
        e.timestamp_ms = TS_MARK;
        Template {
            event_id: event_id as i64,
            json: serde_json::to_string(&e).expect("serialize an event"),
            offset_ms,
            turn,
        }
    };
    let mut out = vec![event(
        1,
        None,
        EventKind::OrchestrationStarted {
            name: "LoadgenFanout".into(),
            version: "1.0.0".into(),
            input: input.into(),
            parent_instance: None,
            parent_id: None,
            parent_execution_id: None,
            carry_forward_events: None,
            initial_custom_status: None,
        },
        0,
        0,
    )];
    // The activity's input is its delay in ms (fanout's default 10ms), echoed as its result.
    for i in 0..TASKS {
        let kind = EventKind::ActivityScheduled {
            name: "LoadgenFanoutTask".into(),
            input: "10".into(),
            session_id: None,
            tag: None,
        };
        out.push(event(2 + i, None, kind, 1, 0));
    }
    for i in 0..TASKS {
        out.push(event(2 + TASKS + i, Some(2 + i), EventKind::ActivityCompleted { result: "10".into() }, 12, 1));
    }
    out.push(event(
        2 + 2 * TASKS,
        None,
        EventKind::OrchestrationCompleted { output: format!("fanout:{TASKS}") },
        13,
        1,
    ));
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The id of the n-th instance (agents take turns).
fn instance_id(n: u64) -> String {
    format!("{RUN}-{}-{}", n % u64::from(AGENTS), n / u64::from(AGENTS))
}

async fn exec(provider: &RunDb, sql: &str) -> u64 {
    sqlx::query(sql).execute(provider.pool()).await.unwrap_or_else(|e| panic!("{e}: {sql}")).rows_affected()
}

/// Load `n` completed fanout instances, set-based; rows written.
async fn load(provider: &RunDb, n: u64, input: &str) -> u64 {
    let s = provider.schema_name();
    let events = templates(input);
    let (major, minor, patch) = {
        let v: Vec<i32> = env_version().split('.').map(|p| p.parse().expect("duroxide version")).collect();
        (v[0], v[1], v[2])
    };
    let last = events.iter().map(|e| e.offset_ms).max().unwrap_or(0);
    // Instance n: its id and start (ms).
    let g = format!(
        "SELECT n, '{RUN}-' || (n % {AGENTS}) || '-' || (n / {AGENTS}) AS id, {T0_MS} + n * 2 AS t \
         FROM generate_series(0, {}::bigint) n",
        n as i64 - 1
    );
    let mut rows = exec(
        provider,
        &format!(
            "INSERT INTO {s}.instances (instance_id, orchestration_name, orchestration_version, current_execution_id, \
                                        parent_instance_id, created_at, updated_at, custom_status, custom_status_version) \
             SELECT id, 'LoadgenFanout', '1.0.0', 1, NULL, to_timestamp(t / 1000.0), to_timestamp((t + {last}) / 1000.0), \
                    NULL, 0 FROM ({g}) g ORDER BY n"
        ),
    )
    .await;
    rows += exec(
        provider,
        &format!(
            "INSERT INTO {s}.executions (instance_id, execution_id, status, output, started_at, completed_at, \
                                         duroxide_version_major, duroxide_version_minor, duroxide_version_patch) \
             SELECT id, 1, 'Completed', 'fanout:{TASKS}', to_timestamp(t / 1000.0), to_timestamp((t + {last}) / 1000.0), \
                    {major}, {minor}, {patch} FROM ({g}) g ORDER BY n"
        ),
    )
    .await;
    let sql = format!(
        "INSERT INTO {s}.history (instance_id, execution_id, event_id, event_type, event_data, created_at) \
         SELECT g.id, 1, e.event_id, 'Event', \
                replace(replace(e.json, '{ID_MARK}', g.id), '{TS_MARK}', (g.t + e.off)::text), \
                to_timestamp((g.t + e.off) / 1000.0) \
         FROM ({g}) g CROSS JOIN unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[]) AS e(event_id, json, off, turn) \
         ORDER BY g.n / {WINDOW}, e.turn, g.n, e.event_id"
    );
    rows += sqlx::query(&sql)
        .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.json.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.offset_ms).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.turn).collect::<Vec<_>>())
        .execute(provider.pool())
        .await
        .expect("insert the history")
        .rows_affected();
    let tables: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
        .bind(s)
        .fetch_all(provider.pool())
        .await
        .expect("list the schema's tables");
    for t in tables {
        exec(provider, &format!("ANALYZE {s}.{t}")).await;
    }
    rows
}

/// The duroxide version the events carry.
fn env_version() -> String {
    Event::with_event_id(0, "", 1, None, EventKind::OrchestrationCompleted { output: String::new() }).duroxide_version
}

async fn run_audit(provider: &RunDb, input: &AuditInput) -> (AuditOutcome, Duration) {
    let t = Instant::now();
    let outcome = audit::audit(provider, input).await.expect("audit");
    (outcome, t.elapsed())
}

/// Corrupt three instances, one way each; their ids.
async fn corrupt(provider: &RunDb, n: u64) -> BTreeSet<String> {
    let s = provider.schema_name();
    let ids = [instance_id(n / 3), instance_id(n / 2), instance_id(n - 1)];
    let statements = [
        // A lost ActivityCompleted.
        format!("DELETE FROM {s}.history WHERE instance_id = '{}' AND execution_id = 1 AND event_id = 6", ids[0]),
        // A second execution.
        format!(
            "INSERT INTO {s}.executions (instance_id, execution_id, status, output, started_at, completed_at) \
             VALUES ('{}', 2, 'Completed', 'fanout:{TASKS}', now(), now())",
            ids[1]
        ),
        // A changed output.
        format!("UPDATE {s}.executions SET output = 'tampered' WHERE instance_id = '{}' AND execution_id = 1", ids[2]),
    ];
    for sql in &statements {
        assert_eq!(exec(provider, sql).await, 1, "{sql}");
    }
    ids.into_iter().collect()
}

/// The whole bench; false when the audit got something wrong.
async fn bench(url: &str, n: u64) -> bool {
    let provider = loadgen_coordinator::db::create_schema(url, &format!("loadgen_{RUN}"))
        .await
        .expect("create and migrate the run schema");
    let ctx = Context { run_id: RUN.into(), seed: 1, agent: 0, agents: AGENTS };
    let opts = Options::from([("tasks".to_string(), TASKS.to_string())]);
    let built = build("fanout", &opts, &ctx).expect("the fanout scenario");
    let orchestration_input = built.scenario.start(At { agent: 0, seq: 0 }).input;

    let t = Instant::now();
    let rows = load(&provider, n, &orchestration_input).await;
    let loaded = t.elapsed();
    let (avg, size): (f64, i64) = sqlx::query_as(&format!(
        "SELECT avg(length(event_data))::float8, pg_total_relation_size('{}.history') FROM {}.history",
        provider.schema_name(),
        provider.schema_name()
    ))
    .fetch_one(provider.pool())
    .await
    .expect("the history's size");
    println!(
        "loaded {n} fanout instances ({rows} rows, with ANALYZE) in {}; history {:.0} MB, {avg:.0} bytes of event_data a row",
        secs(loaded),
        size as f64 / 1e6
    );

    let input = AuditInput {
        run_id: Some(RUN.into()),
        scenario: Some(built.scenario),
        launched: n,
        completed: Some(n),
        activities_executed: TASKS * n,
        ..Default::default()
    };
    let pattern = format!("{RUN}-%");
    let mut ok = true;
    let mut totals = Vec::new();
    for round in 1..=ROUNDS {
        let (outcome, d) = run_audit(&provider, &input).await;
        let a = &outcome.audit;
        println!("audit {round}: {} ({} as expected, passed: {})", secs(d), a.as_expected, a.passed());
        if !a.passed() || a.as_expected != n {
            ok = false;
            for p in &a.problems {
                println!("  problem: {p}");
            }
        }
        totals.push(d);
    }
    let (mut queries, mut judges) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let t = Instant::now();
        let rows = query::instances(&provider, &pattern).await.expect("the instances query");
        let q = t.elapsed();
        let t = Instant::now();
        let a = audit::judge(&rows, &input);
        let j = t.elapsed();
        println!("split {round}: query {} ({} rows), judge {}", secs(q), rows.len(), secs(j));
        assert_eq!(a.as_expected, n, "judge alone");
        queries.push(q);
        judges.push(j);
    }
    let (total, q, j) = (median(totals), median(queries), median(judges));

    let corrupted = corrupt(&provider, n).await;
    let (outcome, d) = run_audit(&provider, &input).await;
    let a = &outcome.audit;
    let named: BTreeSet<String> = a.mismatches.iter().map(|m| m.instance.clone()).collect();
    let caught = !a.passed() && named == corrupted && a.anomalies == 3;
    println!(
        "corrupted {}: audit in {}, passed: {}, {} anomalies, named {} — {}",
        corrupted.iter().cloned().collect::<Vec<_>>().join(", "),
        secs(d),
        a.passed(),
        a.anomalies,
        named.iter().cloned().collect::<Vec<_>>().join(", "),
        if caught { "caught, exactly those" } else { "NOT as expected" }
    );
    for m in &a.mismatches {
        println!("  {}: {}", m.instance, m.problems.join("; "));
    }
    ok &= caught;
    provider.pool().close().await;

    println!(
        "audit of {n} instances: median {:.1} s (query {:.1} s, judge {:.1} s) — target < {} s: {}",
        total.as_secs_f64(),
        q.as_secs_f64(),
        j.as_secs_f64(),
        TARGET.as_secs(),
        if total < TARGET { "met" } else { "missed" }
    );
    ok
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = match std::env::var("AUDIT_INSTANCES") {
        Ok(v) => v.parse::<u64>().expect("AUDIT_INSTANCES: a number of instances"),
        Err(_) => DEFAULT_INSTANCES,
    };
    assert!(n >= 4, "AUDIT_INSTANCES: at least 4 (three distinct instances are corrupted)");
    let mut pg = EmbeddedPostgres::start().await.expect("throwaway Postgres (initdb and postgres installed)");
    let ok = bench(pg.url(), n).await;
    tokio::task::spawn_blocking(move || pg.stop()).await.expect("stop the throwaway Postgres");
    if !ok {
        std::process::exit(1);
    }
}
