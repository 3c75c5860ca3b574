//! The audit's reads: a few set-based queries for the whole run, never one
//! per instance. Every instance with its status, output (whole when short,
//! by length and md5 when long), executions and history events by type; the
//! queues; and the latencies scenarios read back from the history.

use std::collections::BTreeMap;

use crate::db::RunDb;
use loadgen_common::histogram::LatencyHistogram;
use loadgen_common::schema::GENERATOR_SQL_MARK;
use loadgen_scenarios::expect::SHORT_OUTPUT;
use loadgen_scenarios::{HistoryMetric, MetricStart, Observed};
use sqlx::Row;

use crate::db::db_err;
use crate::error::CoordinatorError;

/// One instance as the database shows it.
#[derive(Clone, Debug, Default)]
pub struct InstanceRow {
    pub id: String,
    pub orchestration: String,
    pub observed: Observed,
}

/// Every instance whose id matches `pattern` (`<run>-%`).
pub async fn instances(provider: &RunDb, pattern: &str) -> Result<Vec<InstanceRow>, CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "{GENERATOR_SQL_MARK} WITH i AS (SELECT instance_id, orchestration_name, current_execution_id FROM {s}.instances WHERE instance_id LIKE $1), \
              x AS (SELECT instance_id, count(*) AS n FROM {s}.executions WHERE instance_id LIKE $1 GROUP BY instance_id), \
              t AS (SELECT instance_id, event_data::jsonb->>'type' AS kind, count(*) AS n FROM {s}.history \
                    WHERE instance_id LIKE $1 GROUP BY 1, 2), \
              h AS (SELECT instance_id, jsonb_object_agg(kind, n)::text AS events FROM t GROUP BY instance_id) \
         SELECT i.instance_id, i.orchestration_name, coalesce(e.status, ''), \
                CASE WHEN length(e.output) <= {SHORT_OUTPUT} THEN e.output END, \
                coalesce(length(e.output), 0)::bigint, coalesce(md5(e.output), ''), coalesce(x.n, 0)::bigint, \
                coalesce(h.events, '{{}}') \
         FROM i \
         LEFT JOIN {s}.executions e ON e.instance_id = i.instance_id AND e.execution_id = i.current_execution_id \
         LEFT JOIN x ON x.instance_id = i.instance_id \
         LEFT JOIN h ON h.instance_id = i.instance_id"
    );
    let rows = sqlx::query(&sql)
        .bind(pattern)
        .fetch_all(provider.pool())
        .await
        .map_err(|e| db_err("auditing the instances", e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let get = |i: usize| r.try_get::<String, _>(i).map_err(|e| db_err("reading an instance", e));
        let events_text = get(7)?;
        let events: BTreeMap<String, u64> =
            serde_json::from_str(&events_text).map_err(|e| db_err("reading an instance's history counts", e))?;
        out.push(InstanceRow {
            id: get(0)?,
            orchestration: get(1)?,
            observed: Observed {
                status: get(2)?,
                output: r.try_get::<Option<String>, _>(3).map_err(|e| db_err("reading an output", e))?,
                output_len: r.try_get::<i64, _>(4).map_or(0, |v| v.max(0) as u64),
                output_md5: get(5)?,
                executions: r.try_get::<i64, _>(6).map_or(0, |v| v.max(0) as u64),
                events,
            },
        });
    }
    Ok(out)
}

/// An execution whose instance has no `instances` row: duroxide's client
/// cannot see it (its status reads "not found"), though the execution ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub id: String,
    pub status: String,
    pub output: String,
}

/// Executions of the run with no `instances` row. duroxide 0.1.32 makes
/// them when the first turn's ack fails permanently: the failure is then
/// committed without the orchestration's name, and duroxide-pg creates the
/// instance row only when the name comes with the ack.
pub async fn orphans(provider: &RunDb, pattern: &str) -> Result<Vec<Orphan>, CoordinatorError> {
    let s = provider.schema_name();
    let rows = sqlx::query(&format!(
        "{GENERATOR_SQL_MARK} SELECT e.instance_id, e.status, coalesce(left(e.output, 300), '') FROM {s}.executions e \
         LEFT JOIN {s}.instances i ON i.instance_id = e.instance_id \
         WHERE e.instance_id LIKE $1 AND i.instance_id IS NULL ORDER BY e.instance_id, e.execution_id"
    ))
    .bind(pattern)
    .fetch_all(provider.pool())
    .await
    .map_err(|e| db_err("auditing executions without an instance", e))?;
    rows.iter()
        .map(|r| {
            let get = |i: usize| r.try_get::<String, _>(i).map_err(|e| db_err("reading an execution", e));
            Ok(Orphan { id: get(0)?, status: get(1)?, output: get(2)? })
        })
        .collect()
}

/// What is left in the queues after a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Queued {
    /// Messages nobody consumed: work lost or stuck.
    pub messages: u64,
    /// Timers of instances that ended before the timer fired (a cancelled
    /// instance's timer, a timeout that lost a race). duroxide discards
    /// them when they fire; not a defect.
    pub stale_timers: u64,
}

/// Messages left in the orchestrator and worker queues for the run.
pub async fn queued(provider: &RunDb, pattern: &str) -> Result<Queued, CoordinatorError> {
    let s = provider.schema_name();
    let row = sqlx::query(&format!(
        "{GENERATOR_SQL_MARK} WITH stale AS ( \
             SELECT q.id FROM {s}.orchestrator_queue q \
             JOIN {s}.instances i ON i.instance_id = q.instance_id \
             JOIN {s}.executions e ON e.instance_id = i.instance_id AND e.execution_id = i.current_execution_id \
             WHERE q.instance_id LIKE $1 AND q.work_item::text LIKE '{{\"TimerFired\"%' \
               AND e.status IN ('Completed', 'Failed')) \
         SELECT (SELECT count(*) FROM {s}.orchestrator_queue WHERE instance_id LIKE $1), \
                (SELECT count(*) FROM {s}.worker_queue WHERE instance_id LIKE $1 OR instance_id IS NULL), \
                (SELECT count(*) FROM stale)"
    ))
    .bind(pattern)
    .fetch_one(provider.pool())
    .await
    .map_err(|e| db_err("auditing the queues", e))?;
    let get = |i: usize| row.try_get::<i64, _>(i).map_or(0, |v| v.max(0) as u64);
    let stale_timers = get(2);
    Ok(Queued { messages: (get(0) + get(1)).saturating_sub(stale_timers), stale_timers })
}

/// A latency read from the history, and how many samples were clamped at 0
/// (a runtime whose clock ran behind the raiser's).
#[derive(Debug, Default)]
pub struct MetricValues {
    pub histogram: LatencyHistogram,
    pub clamped: u64,
}

/// The values of `metric` over the instances of `orchestrations` in the run.
pub async fn history_metric(
    provider: &RunDb,
    pattern: &str,
    orchestrations: &[&str],
    metric: &HistoryMetric,
) -> Result<MetricValues, CoordinatorError> {
    let s = provider.schema_name();
    let start = match metric.from {
        MetricStart::FireAt => "(d->>'fire_at_ms')::bigint",
        MetricStart::RaisedAt => "CASE WHEN d->>'data' ~ '^[0-9]+\\|' THEN split_part(d->>'data', '|', 1)::bigint END",
    };
    let sql = format!(
        "{GENERATOR_SQL_MARK} SELECT ((d->>'timestamp_ms')::bigint - {start}) AS ms FROM \
           (SELECT h.event_data::jsonb AS d FROM {s}.history h JOIN {s}.instances i ON i.instance_id = h.instance_id \
            WHERE h.instance_id LIKE $1 AND i.orchestration_name = ANY($2)) e \
         WHERE d->>'type' = $3"
    );
    let names: Vec<String> = orchestrations.iter().map(|s| s.to_string()).collect();
    let rows = sqlx::query(&sql)
        .bind(pattern)
        .bind(&names)
        .bind(metric.event)
        .fetch_all(provider.pool())
        .await
        .map_err(|e| db_err(&format!("reading {} from the history", metric.name), e))?;
    let mut out = MetricValues::default();
    for r in rows {
        let Ok(Some(ms)) = r.try_get::<Option<i64>, _>(0) else { continue };
        if ms < 0 {
            out.clamped += 1;
        }
        out.histogram.record_us(ms.max(0) as u64 * 1000);
    }
    Ok(out)
}
