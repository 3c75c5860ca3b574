//! Exactly once against the activity ledger, end to end: the agents keep a
//! line for every activity that ran, outside the database. Mid-run, one
//! completed instance loses an activity's scheduling and completion from its
//! history (as a failover or restore that lost them would leave it), and
//! another is given a completion of an activity that never ran. After the
//! run each is named by instance id and fails the audit; the rest of the
//! ledger agrees with the history line for line.

use sqlx::Connection;

use crate::scenarios::{run_schema, spawn_run};
use crate::support::{read_report, show};
use loadgen_coordinator::db::embedded::EmbeddedPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_the_history_lost_and_a_completion_nobody_ran_are_named_by_the_ledger() {
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("ledger.json");
    let child = spawn_run(tmp.path(), pg.url(), "8s", &json);
    let mut conn = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
    let s = run_schema(&mut conn, "executions", "completed_at").await;
    // Completed activities of instances that completed 2 s ago or more, one per instance.
    let pick = format!(
        "WITH s AS (SELECT instance_id, execution_id, event_id, event_data::jsonb AS d FROM {s}.history h \
           WHERE event_data::jsonb->>'type' = 'ActivityScheduled' AND EXISTS (SELECT 1 FROM {s}.executions x \
             WHERE x.instance_id = h.instance_id AND x.status = 'Completed' AND x.completed_at < now() - interval '2 seconds')) \
         SELECT DISTINCT ON (instance_id) instance_id, execution_id, event_id FROM s s1 \
         WHERE EXISTS (SELECT 1 FROM {s}.history c WHERE c.instance_id = s1.instance_id AND c.execution_id = s1.execution_id \
                AND c.event_data::jsonb->>'type' = 'ActivityCompleted' AND (c.event_data::jsonb->>'source_event_id')::bigint = s1.event_id) \
         ORDER BY instance_id, event_id LIMIT 2"
    );
    let mut found: Vec<(String, i64, i64)> = Vec::new();
    for _ in 0..100 {
        // The schema's migrations may still be under way.
        found = sqlx::query_as(&pick).fetch_all(&mut conn).await.unwrap_or_default();
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), 2, "two instances with a completed activity within 10 s");
    let completion =
        "event_data::jsonb->>'type' = 'ActivityCompleted' AND (event_data::jsonb->>'source_event_id')::bigint = $3";
    // The history loses an activity that ran: every scheduling of it (by
    // name and input) in its execution, with their completions.
    let (lost, e, id) = &found[0];
    let n = sqlx::query(&format!(
        "WITH k AS (SELECT event_data::jsonb AS d FROM {s}.history WHERE instance_id = $1 AND execution_id = $2 AND event_id = $3), \
              gone AS (SELECT h.event_id FROM {s}.history h, k WHERE h.instance_id = $1 AND h.execution_id = $2 \
                AND h.event_data::jsonb->>'type' = 'ActivityScheduled' \
                AND h.event_data::jsonb->>'name' = k.d->>'name' AND h.event_data::jsonb->>'input' = k.d->>'input') \
         DELETE FROM {s}.history WHERE instance_id = $1 AND execution_id = $2 AND (event_id IN (SELECT event_id FROM gone) \
           OR (event_data::jsonb->>'type' = 'ActivityCompleted' \
               AND (event_data::jsonb->>'source_event_id')::bigint IN (SELECT event_id FROM gone)))"
    ))
    .bind(lost)
    .bind(e)
    .bind(id)
    .execute(&mut conn)
    .await
    .expect("delete an activity's schedulings and completions")
    .rows_affected();
    assert!(n >= 2 && n % 2 == 0, "{n} rows deleted");
    let runs_lost = n / 2;
    // Another gains a completion of an activity nobody ran: a copy of one
    // of its own, with another input, after its last event.
    let (forged, e, id) = &found[1];
    let copy = |event: &str, patch: &str| {
        format!(
            "INSERT INTO {s}.history (instance_id, execution_id, event_id, event_type, event_data, created_at) \
             SELECT instance_id, execution_id, m.n + {event}, event_type, ({patch})::text, created_at \
             FROM {s}.history, (SELECT max(event_id) AS n FROM {s}.history WHERE instance_id = $1 AND execution_id = $2) m \
             WHERE instance_id = $1 AND execution_id = $2 AND "
        )
    };
    let scheduled = copy(
        "1",
        "jsonb_set(jsonb_set(event_data::jsonb, '{input}', '\"forged by the test\"'), '{event_id}', to_jsonb(m.n + 1))",
    ) + "event_id = $3";
    // (By then the forged scheduling is the last event.)
    let completed = copy(
        "1",
        "jsonb_set(jsonb_set(event_data::jsonb, '{source_event_id}', to_jsonb(m.n)), '{event_id}', to_jsonb(m.n + 1))",
    ) + completion;
    for sql in [scheduled, completed] {
        let n = sqlx::query(&sql).bind(forged).bind(e).bind(id).execute(&mut conn).await.expect(&sql).rows_affected();
        assert_eq!(n, 1, "{sql}");
    }
    conn.close().await.expect("close");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let a = read_report(&json).audit;
    let l = a.activity_ledger.clone().expect("the ledger was compared");
    assert!(l.whole(), "{:?}", l.incomplete);
    assert!(l.executions > 10, "{l:?}");
    assert_eq!((l.unrecorded, l.completed_unrun, l.ran_again), (runs_lost, 1, 0), "{:?}", l.named);
    let named = |kind: &str| l.named.iter().find(|n| n.kind == kind).cloned().expect(kind);
    let (unrecorded, unrun) = (named("unrecorded"), named("completed_unrun"));
    assert_eq!((unrecorded.instance.as_str(), unrecorded.scheduled, unrecorded.ran_ok), (lost.as_str(), 0, runs_lost));
    assert_eq!((unrun.instance.as_str(), unrun.completed, unrun.ran_ok + unrun.ran_failed), (forged.as_str(), 1, 0));
    let md5: String = {
        let mut c = sqlx::PgConnection::connect(pg.url()).await.expect("connect");
        sqlx::query_scalar("SELECT md5('forged by the test')").fetch_one(&mut c).await.expect("md5")
    };
    assert_eq!(unrun.input_md5, md5);
    let p = a.problems.join("\n");
    assert!(
        p.contains(&format!("the history lost work that ran), e.g. {lost} execution {}", unrecorded.execution)),
        "{p}"
    );
    assert!(p.contains(&format!("that no agent's activity ran, e.g. {forged} execution")), "{p}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("exactly once (activity ledger, kept by the agents): VIOLATED, "), "{text}");
    assert!(text.contains(&format!("completed unrun: {forged} execution")), "{text}");
}
