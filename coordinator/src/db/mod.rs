//! The coordinator's database work: create and migrate the run's schema once,
//! read the server's counters, and drop the schema at the end.
//!
//! - [`embedded`]: the throwaway Postgres (the embedded default);
//! - [`watch`]: the database timeline, sampled once a second;
//! - [`procedures`]: the run's database time by stored procedure and statement;
//! - [`audit`]: the per-instance correctness audit;
//! - [`cleanup`]: schemas left behind, listed and dropped on request;
//! - [`leftover`]: throwaway servers a killed coordinator left on this machine.

pub mod audit;
pub mod cleanup;
pub mod embedded;
pub mod ha;
pub mod leases;
pub mod leftover;
pub mod procedures;
pub mod watch;

use duroxide_pg::PostgresProvider;
use loadgen_common::secret;
use sqlx::Row;

use crate::error::{CoordinatorError, one_line};

/// Bound on the pre-flight connection.
const PREFLIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connect once, before any agent starts, so an unreachable database or a bad
/// password is reported at once and with its real cause.
pub async fn preflight(url: &str) -> Result<(), CoordinatorError> {
    use sqlx::Connection;
    let fail = |detail: String| connect_err(url, detail);
    match tokio::time::timeout(PREFLIGHT_TIMEOUT, sqlx::PgConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!("no answer within {PREFLIGHT_TIMEOUT:?}"))),
    }
}

/// The server's connection limits: (max_connections, reserved for superusers, in use now).
pub async fn connection_limits(url: &str) -> Result<(u64, u64, u64), CoordinatorError> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| connect_err(url, e))?;
    let row = sqlx::query(
        "SELECT current_setting('max_connections')::bigint, current_setting('superuser_reserved_connections')::bigint, \
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| db_err("reading max_connections", e))?;
    let _ = conn.close().await;
    let get = |i: usize| row.try_get::<i64, _>(i).map(|v| v.max(0) as u64).unwrap_or(0);
    Ok((get(0), get(1), get(2)))
}

/// The run's schema as the coordinator reaches it: a pool on the database
/// and the schema's name. Deliberately not a provider: the coordinator's own
/// SQL (tracking, sampling, audit) must work on a schema another build of
/// duroxide-pg migrated, which this build's provider would refuse to open.
#[derive(Clone, Debug)]
pub struct RunDb {
    pool: sqlx::PgPool,
    schema: String,
}

/// Bound on connecting to the run's database.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl RunDb {
    /// A pool on `url` for `schema` (sized like a provider's pool:
    /// `DUROXIDE_PG_POOL_MAX`, which the connection pre-flight counts).
    pub async fn connect(url: &str, schema: &str) -> Result<Self, CoordinatorError> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(loadgen_common::process::pool_max_from_env())
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(url);
        let pool = match tokio::time::timeout(CONNECT_TIMEOUT, pool).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return Err(connect_err(url, e)),
            Err(_) => return Err(connect_err(url, format!("no answer within {CONNECT_TIMEOUT:?}"))),
        };
        Ok(RunDb { pool, schema: schema.to_string() })
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// duroxide-pg's ready messages (visible and unlocked): orchestrator and
    /// worker queue, through the schema's own `get_queue_depths` function.
    pub async fn queue_depths(&self) -> Result<(u64, u64), sqlx::Error> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let (o, w): (i64, i64) = sqlx::query_as(&format!("SELECT * FROM {}.get_queue_depths($1)", self.schema))
            .bind(now_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok((o.max(0) as u64, w.max(0) as u64))
    }
}

/// Create `schema` and apply this build's duroxide-pg migrations (agents
/// only verify).
pub async fn create_schema(url: &str, schema: &str) -> Result<RunDb, CoordinatorError> {
    let connect = PostgresProvider::new_with_schema(url, Some(schema));
    match tokio::time::timeout(std::time::Duration::from_secs(60), connect).await {
        Ok(Ok(p)) => Ok(RunDb { pool: p.pool().clone(), schema: schema.to_string() }),
        Ok(Err(e)) => Err(CoordinatorError::Database(one_line(&secret::scrub(
            &format!("cannot prepare schema {schema} at {}: {e:#}", secret::mask_url(url)),
            url,
        )))),
        Err(_) => Err(CoordinatorError::Database(format!(
            "no answer from {} within 60s while preparing schema {schema}",
            secret::mask_url(url)
        ))),
    }
}

/// What the coordinator can read of a schema the agents' build migrated.
#[derive(Debug, Default)]
pub struct SchemaCheck {
    pub notes: Vec<String>,
    /// The tables its completion query reads are as it knows them; when
    /// not, completions and the audit go through duroxide's client API in
    /// the agents.
    pub readable: bool,
}

/// A schema the agents migrated with their build: whether this build's
/// duroxide-pg knows its migrations (a note when it does not), and whether
/// the tables the coordinator reads are still there (when not, the run
/// falls back to duroxide's client API in the agents, and says so).
pub async fn agents_schema(url: &str, db: &RunDb) -> SchemaCheck {
    use duroxide_pg::{MigrationPolicy, ProviderConfig};
    let mut notes = Vec::new();
    let mut config = ProviderConfig::url(url);
    config.schema_name = Some(db.schema.clone());
    config.migration_policy = MigrationPolicy::VerifyOnly;
    match PostgresProvider::new_with_config(config).await {
        Ok(p) => p.pool().close().await,
        Err(e) => notes.push(one_line(&secret::scrub(
            &format!(
                "the agents' build migrated the schema to a version this coordinator's duroxide-pg {} does not verify (older or newer: {e:#}); the coordinator reads its tables as that version knows them",
                loadgen_common::DUROXIDE_PG_VERSION
            ),
            url,
        ))),
    }
    let probe = loadgen_common::tracker::Tracker::fingerprinting(&db.schema);
    let readable = match probe.poll(&db.pool, &[]).await {
        Ok(_) => true,
        Err(e) => {
            notes.push(one_line(&format!(
                "the agents' build changed the tables this tool reads ({e}): completions were tracked by the agents and the audit read through duroxide's client API"
            )));
            false
        }
    };
    SchemaCheck { notes, readable }
}

/// Drop the schema and everything in it, whichever build migrated it.
pub async fn drop_schema(db: &RunDb) -> Result<(), CoordinatorError> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", db.schema))
        .execute(&db.pool)
        .await
        .map_err(|e| CoordinatorError::Database(one_line(&format!("dropping schema {}: {e:#}", db.schema))))?;
    db.pool.close().await;
    Ok(())
}

/// The database's transaction counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XactCounters {
    pub commits: u64,
    pub rollbacks: u64,
    pub deadlocks: u64,
}

impl XactCounters {
    /// What happened from `earlier` to `self`, and whether the server's
    /// statistics were reset in between (a crash restart discards them, as
    /// does `pg_stat_reset()`): a counter went backwards. After a reset the
    /// counters count from it, so the step is `self` whole; what the server
    /// did between `earlier` and the reset is not known.
    pub fn step(&self, earlier: &XactCounters) -> (XactCounters, bool) {
        let reset =
            self.commits < earlier.commits || self.rollbacks < earlier.rollbacks || self.deadlocks < earlier.deadlocks;
        if reset {
            return (*self, true);
        }
        let d = XactCounters {
            commits: self.commits - earlier.commits,
            rollbacks: self.rollbacks - earlier.rollbacks,
            deadlocks: self.deadlocks - earlier.deadlocks,
        };
        (d, false)
    }

    /// Over observations in time order (before the load, every sample,
    /// after it): the sum of the steps, segment by segment across resets,
    /// and how many resets there were.
    pub fn across(observed: &[XactCounters]) -> (XactCounters, u32) {
        let mut total = XactCounters::default();
        let mut resets = 0;
        for w in observed.windows(2) {
            let (d, reset) = w[1].step(&w[0]);
            total.commits += d.commits;
            total.rollbacks += d.rollbacks;
            total.deadlocks += d.deadlocks;
            resets += u32::from(reset);
        }
        (total, resets)
    }
}

/// Committed and rolled-back transactions and deadlocks of the current database so far.
pub async fn xact_counters(provider: &RunDb) -> Result<XactCounters, CoordinatorError> {
    let row = sqlx::query(
        "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(provider.pool())
    .await
    .map_err(|e| CoordinatorError::Database(one_line(&format!("reading pg_stat_database: {e}"))))?;
    let get = |i: usize| row.try_get::<i64, _>(i).map_or(0, |v| v.max(0) as u64);
    Ok(XactCounters { commits: get(0), rollbacks: get(1), deadlocks: get(2) })
}

/// Wait, at most `bound`, until no connection the agents' providers opened
/// for this run's schema is left (they carry its
/// [`agent_application_name`](loadgen_common::schema::agent_application_name)).
/// A backend sends its statistics at exit, and otherwise at most once a
/// second: counters read while the runtimes' connections linger miss their
/// last calls. Returns how many were still open at the end.
pub async fn agents_disconnected(provider: &RunDb, bound: std::time::Duration) -> u64 {
    let name = loadgen_common::schema::agent_application_name(provider.schema_name());
    let deadline = std::time::Instant::now() + bound;
    loop {
        let open = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND (application_name = $1 OR starts_with(application_name, $1 || ' '))",
        )
        .bind(&name)
        .fetch_one(provider.pool())
        .await
        .map_or(0, |n| n.max(0) as u64);
        tracing::debug!(open, "agent connections open");
        if open == 0 || std::time::Instant::now() >= deadline {
            if open == 0 {
                // A backend leaves pg_stat_activity a moment before its
                // final flush ends.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            return open;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Instances agent `index` started in `run_id`: (total, completed, failed,
/// not terminal, completed after `after`).
pub async fn agent_instances(
    provider: &RunDb,
    run_id: &str,
    index: u32,
    after: chrono::DateTime<chrono::Utc>,
) -> Result<(u64, u64, u64, u64, u64), CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "SELECT count(*), count(*) FILTER (WHERE e.status = 'Completed'), count(*) FILTER (WHERE e.status = 'Failed'), \
                count(*) FILTER (WHERE e.status IS NULL OR e.status NOT IN ('Completed', 'Failed')), \
                count(*) FILTER (WHERE e.status = 'Completed' AND e.completed_at > $2) \
         FROM {s}.instances i \
         LEFT JOIN {s}.executions e ON e.instance_id = i.instance_id AND e.execution_id = i.current_execution_id \
         WHERE i.instance_id LIKE $1"
    );
    let row = sqlx::query(&sql)
        .bind(format!("{run_id}-{index}-%"))
        .bind(after)
        .fetch_one(provider.pool())
        .await
        .map_err(|e| CoordinatorError::Database(one_line(&format!("counting agent {index}'s instances: {e}"))))?;
    let get = |i: usize| row.try_get::<i64, _>(i).map(|v| v.max(0) as u64).unwrap_or(0);
    Ok((get(0), get(1), get(2), get(3), get(4)))
}

/// The server's `server_version`.
pub async fn server_version(provider: &RunDb) -> Result<String, CoordinatorError> {
    sqlx::query_scalar::<_, String>("SHOW server_version")
        .fetch_one(provider.pool())
        .await
        .map_err(|e| CoordinatorError::Database(one_line(&format!("reading server_version: {e}"))))
}

/// A database that could not be reached at `url`, as a one-line error
/// naming it without its password (the detail is scrubbed too: a driver's
/// message may quote the URL).
pub fn connect_err(url: &str, detail: impl std::fmt::Display) -> CoordinatorError {
    CoordinatorError::Database(one_line(&secret::scrub(
        &format!("cannot connect to {}: {detail}", secret::mask_url(url)),
        url,
    )))
}

/// A database error as a one-line coordinator error.
pub fn db_err(what: &str, e: impl std::fmt::Display) -> CoordinatorError {
    CoordinatorError::Database(one_line(&format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(commits: u64) -> XactCounters {
        XactCounters { commits, rollbacks: commits / 10, deadlocks: 0 }
    }

    #[test]
    fn counters_are_summed_across_a_reset() {
        // 1000 before the load, 5000 and 9000 in it, a crash restart (the
        // server counts from 0 again), 300 and 4300 after it, 6300 at the end.
        let seen = [c(1000), c(5000), c(9000), c(300), c(4300), c(6300)];
        let (total, resets) = XactCounters::across(&seen);
        assert_eq!((total.commits, resets), (8000 + 6300, 1));
        assert_eq!(total.rollbacks, 400 + 400 + 30 + 400 + 200);
        // Without samples in between, the end against the start alone would
        // say 5300 commits; with none reset it is the plain difference.
        assert_eq!(
            XactCounters::across(&[c(1000), c(4000)]),
            (XactCounters { commits: 3000, rollbacks: 300, deadlocks: 0 }, 0)
        );
        assert_eq!(XactCounters::across(&[c(7)]).1, 0);
    }
}
