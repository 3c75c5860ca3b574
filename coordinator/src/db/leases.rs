//! Leases handed out already expired, seen by the database sampler.
//!
//! duroxide-pg leases a message (worker queue) or an instance
//! (`instance_locks`) until `locked_until`, a time in milliseconds that the
//! fetching worker computes from its own clock (`p_now_ms`), which may have
//! been read before a pool wait and an advisory-lock wait, and may be
//! behind. A lease that has expired when it is handed out cannot be
//! acknowledged (`Invalid lock token`) and lets any other fetch take the
//! work at once (duroxide-pg #21, fixed for orchestrations in 0.1.36).
//!
//! Each sample reads the leases held, with the database's clock. A lease
//! whose token the previous sample did not see was handed out after it; if
//! its `locked_until` lies before the previous sample's time, it had
//! expired when it was handed out. This only says what is certain: a lease
//! handed out expired and gone before the next sample is not seen, and one
//! whose expiry falls between the two samples is not judged.

use std::collections::{BTreeMap, HashSet};

use sqlx::Row;

use crate::db::RunDb;
use crate::model::audit::ExpiredLease;

/// Most leases read per sample (far above what a run holds at once).
const READ: i64 = 20_000;
/// Expired leases kept by name (the count is always whole).
pub const KEPT: usize = 50;

/// One lease held at a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub queue: &'static str,
    pub instance: String,
    pub token: String,
    pub locked_until_ms: i64,
}

/// The leases held now, and the database's clock (ms since the epoch) as
/// the statement began, before its snapshot: every lease held then is read.
pub async fn held(provider: &RunDb) -> Result<(Vec<Held>, i64), sqlx::Error> {
    let s = provider.schema_name();
    let sql = format!(
        "{mark} SELECT 0, instance_id, lock_token, locked_until FROM {s}.instance_locks WHERE lock_token IS NOT NULL \
         UNION ALL SELECT 1, coalesce(instance_id, ''), lock_token, locked_until FROM {s}.worker_queue \
           WHERE lock_token IS NOT NULL AND locked_until IS NOT NULL \
         UNION ALL SELECT 2, '', '', (extract(epoch FROM statement_timestamp()) * 1000)::bigint LIMIT $1",
        mark = loadgen_common::schema::GENERATOR_SQL_MARK
    );
    let rows = sqlx::query(&sql).bind(READ).fetch_all(provider.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut now = None;
    for r in rows {
        let which: i32 = r.try_get(0)?;
        let until: i64 = r.try_get(3)?;
        let queue = match which {
            0 => "orchestrator",
            1 => "worker",
            _ => {
                now = Some(until);
                continue;
            }
        };
        out.push(Held { queue, instance: r.try_get(1)?, token: r.try_get(2)?, locked_until_ms: until });
    }
    // The clock's row comes last: past the limit, this sample says nothing.
    now.map(|n| (out, n)).ok_or(sqlx::Error::RowNotFound)
}

/// What the samples have shown so far.
#[derive(Debug, Default)]
pub struct LeaseWatch {
    /// The previous sample's tokens and database time.
    prev: Option<(HashSet<String>, i64)>,
    found: BTreeMap<String, ExpiredLease>,
    /// Every lease seen handed out expired (the kept ones are named).
    pub count: u64,
}

impl LeaseWatch {
    /// One sample's leases, at `now_ms` on the database's clock, `t_s`
    /// seconds after the common start.
    pub fn observe(&mut self, leases: Vec<Held>, now_ms: i64, t_s: f64) {
        if let Some((tokens, before_ms)) = &self.prev {
            for l in leases.iter().filter(|l| !tokens.contains(&l.token) && l.locked_until_ms < *before_ms) {
                if self.found.contains_key(&l.token) {
                    continue;
                }
                self.count += 1;
                if self.found.len() < KEPT {
                    let expired_ms = (before_ms - l.locked_until_ms) as u64;
                    self.found.insert(
                        l.token.clone(),
                        ExpiredLease {
                            queue: l.queue.into(),
                            instance: l.instance.clone(),
                            token: l.token.clone(),
                            expired_for_ms: expired_ms,
                            seen_s: t_s,
                        },
                    );
                }
            }
        }
        self.prev = Some((leases.into_iter().map(|l| l.token).collect(), now_ms));
    }

    /// The leases seen handed out expired, the first first.
    pub fn finish(self) -> (Vec<ExpiredLease>, u64) {
        let count = self.count;
        let mut v: Vec<ExpiredLease> = self.found.into_values().collect();
        v.sort_by(|a, b| a.seen_s.total_cmp(&b.seen_s).then(a.token.cmp(&b.token)));
        (v, count)
    }
}

/// Record what the sampler saw in the audit.
pub fn record(a: &mut crate::model::Audit, (found, count): (Vec<ExpiredLease>, u64)) {
    a.expired_leases = count;
    if count > 0 {
        let named: Vec<String> = found.iter().take(3).map(ExpiredLease::line).collect();
        a.problems.push(format!(
            "no expired lease: {count} lease(s) handed out already expired on the database's clock, e.g. {}",
            named.join(" | ")
        ));
        a.notes.push(
            "a lease expired when handed out cannot be acknowledged and lets another fetch take the work at once: \
             the fetching worker's clock is behind the database's by more than the lock timeout, or its fetch waited \
             longer than that (duroxide-pg #21; see docs/findings.md)"
                .into(),
        );
    }
    a.expired_lease_named = found;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(queue: &'static str, token: &str, until: i64) -> Held {
        Held { queue, instance: format!("r-0-{token}"), token: token.into(), locked_until_ms: until }
    }

    #[test]
    fn only_a_new_lease_that_expired_before_the_previous_sample_is_named() {
        let mut w = LeaseWatch::default();
        // The first sample judges nothing: nothing is known of before it.
        w.observe(vec![held("worker", "old", 500)], 1_000, 1.0);
        w.observe(
            vec![
                held("worker", "old", 500),        // seen before: handed out earlier
                held("worker", "fresh", 31_500),   // valid
                held("orchestrator", "late", 900), // expired before the previous sample
                held("worker", "between", 1_500),  // expired between the samples: not judged
            ],
            2_000,
            2.0,
        );
        // Seen again: counted once.
        w.observe(vec![held("orchestrator", "late", 900)], 3_000, 3.0);
        let (found, n) = w.finish();
        assert_eq!(n, 1);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(
            (f.queue.as_str(), f.instance.as_str(), f.expired_for_ms, f.seen_s),
            ("orchestrator", "r-0-late", 100, 2.0)
        );
    }
}
