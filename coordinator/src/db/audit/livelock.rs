//! No livelock: a message the provider's queues hand out again and again
//! without its work being done. The database sampler names every message
//! whose queue's attempt count reached [`Redelivered::MANY`] during the run;
//! after the run, one still queued was never processed (a livelock, which
//! fails the audit), one gone was processed in the end (lease expiries,
//! noted).

use crate::db::RunDb;
use crate::db::db_err;
use crate::error::CoordinatorError;
use crate::model::audit::{Audit, Redelivered};
use loadgen_common::schema::GENERATOR_SQL_MARK;

/// Messages named in the result (the count is always whole).
const KEPT: usize = 50;

/// Settle which of `seen` are still queued.
pub async fn settle(provider: &RunDb, seen: &mut [Redelivered]) -> Result<(), CoordinatorError> {
    let s = provider.schema_name();
    for queue in ["orchestrator", "worker"] {
        let ids: Vec<i64> = seen.iter().filter(|m| m.queue == queue).map(|m| m.message_id as i64).collect();
        if ids.is_empty() {
            continue;
        }
        let sql = format!("{GENERATOR_SQL_MARK} SELECT id FROM {s}.{queue}_queue WHERE id = ANY($1)");
        let left: std::collections::HashSet<i64> = sqlx::query_scalar::<_, i64>(&sql)
            .bind(&ids)
            .fetch_all(provider.pool())
            .await
            .map_err(|e| db_err("reading which redelivered messages are still queued", e))?
            .into_iter()
            .collect();
        for m in seen.iter_mut().filter(|m| m.queue == queue) {
            m.processed = !left.contains(&(m.message_id as i64));
        }
    }
    Ok(())
}

/// Record what the sampler saw in the audit.
pub fn record(a: &mut Audit, mut seen: Vec<Redelivered>) {
    a.livelock_checked = true;
    // The never processed first, then the most delivered.
    seen.sort_by(|x, y| x.processed.cmp(&y.processed).then(y.attempts.cmp(&x.attempts)));
    let stuck: Vec<&Redelivered> = seen.iter().filter(|m| !m.processed).collect();
    a.livelocked = stuck.len() as u64;
    if !stuck.is_empty() {
        let named: Vec<String> = stuck.iter().take(3).map(|m| m.line()).collect();
        a.problems.push(format!(
            "no livelock: {} message(s) delivered {} times or more and never processed, e.g. {}",
            stuck.len(),
            Redelivered::MANY,
            named.join(" | ")
        ));
    }
    let done = seen.len() - stuck.len();
    if done > 0 {
        a.notes.push(format!(
            "{done} message(s) were delivered {} times or more before they were processed (leases that expired or acknowledgements that failed)",
            Redelivered::MANY
        ));
    }
    seen.truncate(KEPT);
    a.redelivered_messages = seen;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, attempts: u64, processed: bool) -> Redelivered {
        Redelivered {
            queue: "worker".into(),
            instance: format!("r-0-{id}"),
            message_id: id,
            attempts,
            first_seen_s: 2.0,
            last_seen_s: 9.0,
            processed,
        }
    }

    #[test]
    fn a_message_never_processed_fails_the_audit_and_is_named_first() {
        let mut a = Audit::default();
        record(&mut a, Vec::new());
        assert!(a.passed() && a.livelock_checked && a.notes.is_empty());
        let mut a = Audit::default();
        record(&mut a, vec![m(1, 9, true), m(2, 6, false), m(3, 12, true)]);
        assert_eq!(a.livelocked, 1);
        assert_eq!(a.redelivered_messages.iter().map(|m| m.message_id).collect::<Vec<_>>(), [2, 3, 1]);
        let p = a.problems.join("\n");
        assert!(
            p.contains("1 message(s) delivered 5 times or more and never processed, e.g. worker message 2 of r-0-2: delivered 6 times (seen 2.0-9.0 s), never processed"),
            "{p}"
        );
        assert!(
            a.notes[0].starts_with("2 message(s) were delivered 5 times or more before they were processed"),
            "{:?}",
            a.notes
        );
    }
}
