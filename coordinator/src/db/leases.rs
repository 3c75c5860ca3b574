//! Leases handed out already expired.
//!
//! duroxide-pg leases a work item (`worker_queue`) or an instance
//! (`instance_locks`) until `locked_until`, a time in milliseconds the
//! fetching worker computes from its own clock (`p_now_ms`), which may have
//! been read before a pool wait and an advisory-lock wait, and may be
//! behind. A lease that has expired when it is handed out cannot be
//! acknowledged (`Invalid lock token`) and lets any other fetch take the
//! work at once (duroxide-pg #21, fixed for instance locks in 0.1.36).
//!
//! Before the load starts, the coordinator adds a row trigger to both tables
//! of the run's schema that fires only when a lock token is written with an
//! expiry already past on the database's clock (`WHEN`: a comparison per
//! written lease, nothing more) and notes it in `loadgen_expired_leases`.
//! A second one, on `instance_locks`, notes a renewal (the same token, a new
//! expiry) that revived a lease already expired or moved its deadline
//! earlier (duroxide-pg #44, fixed in 0.1.38: renewal checked the lease
//! against the caller's clock and set `p_now_ms + extend`). The run's schema
//! takes them with it. After the run each one is named.

use sqlx::Row;

use crate::db::RunDb;
use crate::db::db_err;
use crate::error::CoordinatorError;
use crate::model::audit::{Audit, ExpiredLease};
use loadgen_common::schema::GENERATOR_SQL_MARK;

/// Expired leases kept by name (the count is always whole).
pub const KEPT: i64 = 50;

/// The database's clock in milliseconds, as the triggers read it.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The leases' tables and what the result calls each.
const TABLES: [(&str, &str); 2] = [("instance_locks", "orchestrator"), ("worker_queue", "worker")];

/// Add the triggers (after the migrations, before the load).
pub async fn install(provider: &RunDb) -> Result<(), CoordinatorError> {
    let s = provider.schema_name();
    let mut statements = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.loadgen_expired_leases (queue text NOT NULL, instance_id text, \
             lock_token text, locked_until bigint, at_ms bigint NOT NULL, what text NOT NULL, before_until bigint)"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {s}.loadgen_note_expired_lease() RETURNS trigger LANGUAGE plpgsql AS $f$ \
             BEGIN INSERT INTO {s}.loadgen_expired_leases VALUES (TG_ARGV[0], NEW.instance_id, NEW.lock_token, \
             NEW.locked_until, {NOW_MS}, CASE WHEN TG_OP = 'UPDATE' AND OLD.lock_token = NEW.lock_token \
             THEN CASE WHEN NEW.locked_until < OLD.locked_until THEN 'shortened' ELSE 'revived' END \
             ELSE 'handed_out' END, CASE WHEN TG_OP = 'UPDATE' THEN OLD.locked_until END); RETURN NULL; END $f$"
        ),
        format!("DROP TRIGGER IF EXISTS loadgen_renewed_lease ON {s}.instance_locks"),
        format!(
            "CREATE TRIGGER loadgen_renewed_lease AFTER UPDATE OF locked_until ON {s}.instance_locks \
             FOR EACH ROW WHEN (OLD.lock_token = NEW.lock_token AND (NEW.locked_until < OLD.locked_until \
               OR (OLD.locked_until < {NOW_MS} AND NEW.locked_until > OLD.locked_until))) \
             EXECUTE FUNCTION {s}.loadgen_note_expired_lease('orchestrator')"
        ),
    ];
    for (table, queue) in TABLES {
        // (DROP and CREATE: CREATE OR REPLACE TRIGGER needs Postgres 14.)
        statements.push(format!("DROP TRIGGER IF EXISTS loadgen_expired_lease ON {s}.{table}"));
        statements.push(format!(
            "CREATE TRIGGER loadgen_expired_lease AFTER INSERT OR UPDATE OF lock_token ON {s}.{table} \
             FOR EACH ROW WHEN (NEW.lock_token IS NOT NULL \
               AND NEW.locked_until < {NOW_MS}) \
             EXECUTE FUNCTION {s}.loadgen_note_expired_lease('{queue}')"
        ));
    }
    for sql in statements {
        sqlx::query(&sql).execute(provider.pool()).await.map_err(|e| db_err("adding the expired-lease triggers", e))?;
    }
    Ok(())
}

/// The leases noted during the run (the first [`KEPT`]) and how many;
/// `started_ms` is the run's start on the database's clock's scale.
pub async fn read(provider: &RunDb, started_ms: i64) -> Result<Noted, CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "{GENERATOR_SQL_MARK} SELECT queue, coalesce(instance_id, ''), coalesce(lock_token, ''), \
         coalesce(locked_until, 0), at_ms, what, coalesce(before_until, 0), \
         count(*) FILTER (WHERE what = 'handed_out') OVER ()::bigint, \
         count(*) FILTER (WHERE what <> 'handed_out') OVER ()::bigint \
         FROM {s}.loadgen_expired_leases ORDER BY at_ms LIMIT $1"
    );
    let rows = sqlx::query(&sql)
        .bind(KEPT)
        .fetch_all(provider.pool())
        .await
        .map_err(|e| db_err("reading the leases handed out expired", e))?;
    let mut n = Noted::default();
    for r in rows {
        let get = |e| db_err("reading a lease handed out expired", e);
        let until: i64 = r.try_get(3).map_err(get)?;
        let at: i64 = r.try_get(4).map_err(get)?;
        let kind: String = r.try_get(5).map_err(get)?;
        let before: i64 = r.try_get(6).map_err(get)?;
        n.handed_out = r.try_get::<i64, _>(7).map_err(get)?.max(0) as u64;
        n.renewals = r.try_get::<i64, _>(8).map_err(get)?.max(0) as u64;
        let by_ms = match kind.as_str() {
            "shortened" => before - until,
            "revived" => at - before,
            _ => at - until,
        };
        n.found.push(ExpiredLease {
            queue: r.try_get(0).map_err(get)?,
            instance: r.try_get(1).map_err(get)?,
            token: r.try_get(2).map_err(get)?,
            kind,
            by_ms: by_ms.max(0) as u64,
            seen_s: (at - started_ms) as f64 / 1000.0,
        });
    }
    Ok(n)
}

/// What the triggers noted: the first of them, and how many of each.
#[derive(Debug, Default)]
pub struct Noted {
    pub found: Vec<ExpiredLease>,
    /// Leases handed out already expired.
    pub handed_out: u64,
    /// Renewals that revived an expired lease or moved its deadline earlier.
    pub renewals: u64,
}

/// Record what the triggers noted in the audit.
pub fn record(a: &mut Audit, n: Noted) {
    a.expired_leases_checked = true;
    a.expired_leases = n.handed_out;
    a.bad_renewals = n.renewals;
    let first = |handed_out: bool| -> String {
        let named: Vec<String> =
            n.found.iter().filter(|l| (l.kind == "handed_out") == handed_out).take(3).map(ExpiredLease::line).collect();
        named.join(" | ")
    };
    if n.handed_out > 0 {
        a.problems.push(format!(
            "no expired lease: {} lease(s) handed out already expired on the database's clock, e.g. {}",
            n.handed_out,
            first(true)
        ));
        a.notes.push(
            "a lease expired when handed out cannot be acknowledged and lets another fetch take the work at once: \
             the fetching worker's clock is behind the database's by more than the lock timeout, or its fetch waited \
             longer than that (duroxide-pg #21; see docs/findings.md)"
                .into(),
        );
    }
    if n.renewals > 0 {
        a.problems.push(format!(
            "no expired lease: {} renewal(s) revived an instance lock already expired or moved its deadline earlier \
             (duroxide-pg #44, fixed in 0.1.38), e.g. {}",
            n.renewals,
            first(false)
        ));
    }
    a.expired_lease_named = n.found;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_handed_out_expired_fail_the_audit_and_are_named() {
        let mut a = Audit::default();
        record(&mut a, Noted::default());
        assert!(a.passed() && a.expired_leases_checked && a.notes.is_empty());
        let l = |kind: &str, by_ms| ExpiredLease {
            queue: "worker".into(),
            instance: "r-1-7".into(),
            token: "0b5c".into(),
            kind: kind.into(),
            by_ms,
            seen_s: 12.25,
        };
        let found = vec![l("handed_out", 35_012), l("shortened", 3_000), l("revived", 1_500)];
        record(&mut a, Noted { found, handed_out: 3, renewals: 2 });
        assert_eq!((a.expired_leases, a.bad_renewals), (3, 2));
        let p = a.problems.join("\n");
        assert!(
            p.contains("no expired lease: 3 lease(s) handed out already expired on the database's clock, e.g. worker lease of r-1-7 (lock token 0b5c): handed out already expired, by 35.0 s (at 12.2 s)"),
            "{p}"
        );
        assert!(
            p.contains("2 renewal(s) revived an instance lock already expired or moved its deadline earlier (duroxide-pg #44, fixed in 0.1.38), e.g. worker lease of r-1-7 (lock token 0b5c): renewed with a deadline 3.0 s earlier (at 12.2 s) | worker lease of r-1-7 (lock token 0b5c): renewed 1.5 s after it had expired (at 12.2 s)"),
            "{p}"
        );
    }
}
