//! The database timeline: once a second, on the coordinator's clock (the same
//! one the per-second series use), sample commits and rollbacks, deadlocks,
//! connections by state, lock waits (advisory ones apart: duroxide-pg's fetch
//! takes advisory locks), the provider's queue depths, and the messages its
//! queues have handed out many times (a livelock's trace). Sampling runs as
//! its own task with one connection of the coordinator's pool and never
//! delays the run; a failed sample is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::procedures::FetchProbe;
use crate::db::{RunDb, XactCounters};
use crate::model::DbSample;
use crate::model::audit::Redelivered;
use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Sampling interval.
const EVERY: Duration = Duration::from_secs(1);
/// Bound on one sample's queries.
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(900);

/// Queries of one sample (database counters, connections, queue depths,
/// messages delivered many times).
pub const QUERIES_PER_SAMPLE: u64 = 4;
/// Most messages delivered many times read per sample.
const REDELIVERED_PER_SAMPLE: i64 = 50;

/// What a sampler saw, and what it cost.
#[derive(Debug, Default)]
pub struct Sampled {
    pub samples: Vec<DbSample>,
    /// The server's counters at each sample, in order (to sum the run's
    /// commits across a statistics reset).
    pub counters: Vec<XactCounters>,
    /// Queries the sampler made (part of the generator's own load).
    pub queries: u64,
    /// Messages seen delivered [`Redelivered::MANY`] times or more (their
    /// `processed` is settled after the run).
    pub redelivered: Vec<Redelivered>,
}

/// A running sampler.
#[derive(Debug)]
pub struct DbWatch {
    stop: CancellationToken,
    handle: JoinHandle<Sampled>,
    /// The latest sample, for the live view.
    pub latest: watch::Receiver<Option<DbSample>>,
}

impl DbWatch {
    /// Start sampling; `t0` is the common start instant (samples before it
    /// get negative times). With a `probe`, each sample also reads the
    /// dequeues' calls and empty returns.
    pub fn start(provider: Arc<RunDb>, t0: Instant, probe: Option<FetchProbe>) -> Self {
        let stop = CancellationToken::new();
        let (tx, latest) = watch::channel(None);
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut queries = 0;
            let mut prev: Option<(Instant, XactCounters)> = None;
            let mut seen = Vec::new();
            let mut prev_fetches: Option<[u64; 4]> = None;
            let mut redelivered: BTreeMap<(String, u64), Redelivered> = BTreeMap::new();
            let schema = provider.schema_name().to_string();
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = token.cancelled() => break,
                }
                let at = Instant::now();
                queries += QUERIES_PER_SAMPLE;
                let Ok(Ok((counters, mut sample, many))) = tokio::time::timeout(SAMPLE_TIMEOUT, take(&provider)).await
                else {
                    continue;
                };
                let t_s =
                    if at >= t0 { at.duration_since(t0).as_secs_f64() } else { -t0.duration_since(at).as_secs_f64() };
                sample.t_s = t_s;
                for m in many {
                    let seen = redelivered
                        .entry((m.queue.clone(), m.message_id))
                        .or_insert(Redelivered { first_seen_s: t_s, ..m.clone() });
                    seen.attempts = seen.attempts.max(m.attempts);
                    seen.last_seen_s = t_s;
                }
                if let Some(p) = &probe {
                    queries += 1;
                    let now = tokio::time::timeout(SAMPLE_TIMEOUT, p.read(&provider, &schema))
                        .await
                        .ok()
                        .and_then(Result::ok);
                    sample.fetches = match (prev_fetches, now) {
                        (Some(b), Some(n)) => Some(super::procedures::fetch_sample(b, n)),
                        _ => None,
                    };
                    prev_fetches = now;
                }
                seen.push(counters);
                if let Some((when, before)) = prev {
                    let secs = at.duration_since(when).as_secs_f64().max(1e-3);
                    // Across a statistics reset, what was counted since it.
                    let (d, _) = counters.step(&before);
                    sample.commits_per_sec = d.commits as f64 / secs;
                    sample.rollbacks_per_sec = d.rollbacks as f64 / secs;
                    sample.deadlocks = d.deadlocks;
                    let _ = tx.send(Some(sample.clone()));
                    samples.push(sample);
                }
                prev = Some((at, counters));
            }
            Sampled { samples, counters: seen, queries, redelivered: redelivered.into_values().collect() }
        });
        DbWatch { stop, handle, latest }
    }

    /// Stop sampling and return the samples.
    pub async fn finish(self) -> Sampled {
        self.stop.cancel();
        self.handle.await.unwrap_or_default()
    }
}

/// One sample's queries.
async fn take(provider: &RunDb) -> Result<(XactCounters, DbSample, Vec<Redelivered>), sqlx::Error> {
    let pool = provider.pool();
    let row = sqlx::query(
        "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    let get = |i: usize| row.try_get::<i64, _>(i).map(|v| v.max(0) as u64);
    let counters = XactCounters { commits: get(0)?, rollbacks: get(1)?, deadlocks: get(2)? };
    let rows = sqlx::query(
        "SELECT coalesce(state, 'unknown'), count(*), \
                count(*) FILTER (WHERE wait_event_type = 'Lock'), \
                count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory') \
         FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut sample = DbSample::default();
    let mut connections = BTreeMap::new();
    for r in rows {
        let state: String = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        let locks: i64 = r.try_get(2)?;
        let advisory: i64 = r.try_get(3)?;
        connections.insert(state, n.max(0) as u64);
        sample.lock_waits += locks.max(0) as u64;
        sample.advisory_lock_waits += advisory.max(0) as u64;
    }
    sample.connections = connections;
    // Timers wait in the orchestrator queue (delayed visibility) in
    // duroxide-pg: there is no timer queue to count.
    if let Ok((orchestrator, worker)) = provider.queue_depths().await {
        sample.orchestrator_queue = orchestrator;
        sample.worker_queue = worker;
    }
    // A schema without attempt counts costs this part only, not the sample.
    Ok((counters, sample, many_deliveries(provider).await.unwrap_or_default()))
}

/// The messages the provider's queues have handed out many times.
async fn many_deliveries(provider: &RunDb) -> Result<Vec<Redelivered>, sqlx::Error> {
    let s = provider.schema_name();
    let sql = format!(
        "{mark} SELECT 'orchestrator', instance_id, id, attempt_count FROM {s}.orchestrator_queue WHERE attempt_count >= $1 \
         UNION ALL SELECT 'worker', coalesce(instance_id, ''), id, attempt_count FROM {s}.worker_queue WHERE attempt_count >= $1 \
         ORDER BY 4 DESC LIMIT $2",
        mark = loadgen_common::schema::GENERATOR_SQL_MARK
    );
    let rows = sqlx::query(&sql)
        .bind(Redelivered::MANY as i32)
        .bind(REDELIVERED_PER_SAMPLE)
        .fetch_all(provider.pool())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Redelivered {
            queue: r.try_get(0)?,
            instance: r.try_get(1)?,
            message_id: r.try_get::<i64, _>(2)?.max(0) as u64,
            attempts: r.try_get::<i32, _>(3)?.max(0) as u64,
            ..Redelivered::default()
        });
    }
    Ok(out)
}

/// Postgres settings that shape a result, as `name -> value[unit]`.
pub async fn settings(provider: &RunDb) -> BTreeMap<String, String> {
    let q = sqlx::query(
        "SELECT name, setting, coalesce(unit, '') FROM pg_settings WHERE name IN \
         ('max_connections', 'shared_buffers', 'work_mem', 'synchronous_commit', 'fsync', 'wal_level', \
          'max_wal_size', 'checkpoint_timeout', 'deadlock_timeout', 'effective_io_concurrency', \
          'random_page_cost', 'server_version', 'max_worker_processes', 'idle_in_transaction_session_timeout')",
    )
    .fetch_all(provider.pool());
    let Ok(Ok(rows)) = tokio::time::timeout(Duration::from_secs(5), q).await else { return BTreeMap::new() };
    rows.iter()
        .filter_map(|r| {
            let name: String = r.try_get(0).ok()?;
            let value: String = r.try_get(1).ok()?;
            let unit: String = r.try_get(2).ok()?;
            Some((name, format!("{value}{}", if unit.is_empty() { String::new() } else { format!(" {unit}") })))
        })
        .collect()
}
