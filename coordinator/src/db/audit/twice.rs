//! Exactly once, read from the history: a message the runtime processed
//! more than once leaves two history events for one message. Every event
//! the generator raises carries data unique within its instance (its raise
//! time and the scenario's own sequence), so two `ExternalEvent` entries
//! with the same name and data are one event consumed twice; a completion
//! (activity, timer, sub-orchestration) names the event it completes, so
//! two completions of one event are one completion processed twice; and an
//! execution starts once. Each duplicate is named by instance, execution,
//! message and the history's event ids.

use sqlx::Row;

use crate::db::RunDb;
use crate::error::CoordinatorError;
use crate::model::audit::{Audit, Duplicate};
use loadgen_common::schema::GENERATOR_SQL_MARK;

use crate::db::db_err;

/// Duplicates kept by name in the result (the count is always whole).
const KEPT: i64 = 200;
/// Longest event data quoted in a duplicate's description.
const DATA_CHARS: usize = 60;
/// The separator between an event's name and data in the message key.
const SEP: char = '\u{1f}';

/// The messages of instances matching `pattern` that the history shows more than once.
pub async fn duplicates(provider: &RunDb, pattern: &str) -> Result<(Vec<Duplicate>, u64), CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "{GENERATOR_SQL_MARK} WITH k AS ( \
           SELECT instance_id, execution_id::bigint AS execution_id, event_id::bigint AS event_id, \
                  event_data::jsonb->>'type' AS kind, \
                  CASE WHEN event_data::jsonb->>'type' IN ('ExternalEvent', 'ExternalEventPersistent') \
                       THEN coalesce(event_data::jsonb->>'name', '') || chr(31) || coalesce(event_data::jsonb->>'data', '') \
                       ELSE coalesce(event_data::jsonb->>'source_event_id', '') END AS msg \
           FROM {s}.history WHERE instance_id LIKE $1 \
             AND event_data::jsonb->>'type' IN ('ExternalEvent', 'ExternalEventPersistent', 'ActivityCompleted', \
                 'ActivityFailed', 'TimerFired', 'SubOrchestrationCompleted', 'SubOrchestrationFailed', 'OrchestrationStarted')), \
         g AS (SELECT instance_id, execution_id, kind, msg, count(*) AS n, \
                      array_agg(event_id ORDER BY event_id) AS ids \
               FROM k GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) \
         SELECT instance_id, execution_id, kind, msg, n, ids, sum(n - 1) OVER ()::bigint \
         FROM g ORDER BY instance_id, execution_id, ids[1] LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(pattern)
        .bind(KEPT)
        .fetch_all(provider.pool())
        .await
        .map_err(|e| db_err("reading the history for messages processed twice", e))?;
    let mut total = 0;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let kind: String = r.try_get(2).map_err(|e| db_err("reading a duplicate", e))?;
        let msg: String = r.try_get(3).map_err(|e| db_err("reading a duplicate", e))?;
        total = r.try_get::<i64, _>(6).map_or(0, |v| v.max(0) as u64);
        out.push(Duplicate {
            instance: r.try_get(0).map_err(|e| db_err("reading a duplicate", e))?,
            execution: r.try_get::<i64, _>(1).map_or(0, |v| v.max(0) as u64),
            message: describe(&kind, &msg),
            kind,
            times: r.try_get::<i64, _>(4).map_or(0, |v| v.max(0) as u64),
            event_ids: r
                .try_get::<Vec<i64>, _>(5)
                .map_err(|e| db_err("reading a duplicate", e))?
                .into_iter()
                .map(|v| v.max(0) as u64)
                .collect(),
        });
    }
    Ok((out, total))
}

/// A message as people read it: the event's name and data, or the event a
/// completion completes.
fn describe(kind: &str, msg: &str) -> String {
    match msg.split_once(SEP) {
        Some((name, data)) => {
            let short: String = data.chars().take(DATA_CHARS).collect();
            let more = if data.chars().count() > DATA_CHARS { "..." } else { "" };
            format!("{kind} {name:?} with data {short:?}{more}")
        }
        None if msg.is_empty() => kind.to_string(),
        None => format!("{kind} of event {msg}"),
    }
}

/// Record what was found in the audit: a problem naming the first
/// duplicates and what they are the signature of.
pub fn record(a: &mut Audit, found: Vec<Duplicate>, extra: u64) {
    a.exactly_once_checked = true;
    a.processed_twice = extra;
    if found.is_empty() {
        return;
    }
    let instances: std::collections::BTreeSet<&str> = found.iter().map(|d| d.instance.as_str()).collect();
    let named: Vec<String> = found.iter().take(3).map(Duplicate::line).collect();
    a.problems.push(format!(
        "exactly once: {extra} message(s) processed again in {}{} instance(s), e.g. {}",
        instances.len(),
        if found.len() as i64 >= KEPT { "+" } else { "" },
        named.join(" | ")
    ));
    a.notes.push(
        "a message processed again after it was consumed is what a lock taken over during an acknowledgement leaves \
         (a fetch that judged the lock expired, then both acknowledgements committed: duroxide-pg #29, fixed in 0.1.38; \
         see docs/findings.md)"
            .into(),
    );
    a.duplicates = found;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_people_name_them() {
        assert_eq!(
            describe("ExternalEventPersistent", "loadgen-event\u{1f}1796436570251|event 1"),
            "ExternalEventPersistent \"loadgen-event\" with data \"1796436570251|event 1\""
        );
        assert_eq!(describe("ActivityCompleted", "5"), "ActivityCompleted of event 5");
        assert_eq!(describe("OrchestrationStarted", ""), "OrchestrationStarted");
        let long = format!("q\u{1f}{}", "x".repeat(100));
        assert!(describe("ExternalEvent", &long).ends_with("\"..."));
    }

    #[test]
    fn duplicates_fail_the_audit_and_are_named() {
        let mut a = Audit::default();
        record(&mut a, Vec::new(), 0);
        assert!(a.passed() && a.exactly_once_checked && a.notes.is_empty());
        let d = Duplicate {
            instance: "r-0-7".into(),
            execution: 1,
            kind: "ExternalEventPersistent".into(),
            message: "ExternalEventPersistent \"e\" with data \"1|event 1\"".into(),
            times: 2,
            event_ids: vec![5, 9],
        };
        record(&mut a, vec![d], 1);
        assert_eq!(a.processed_twice, 1);
        let p = a.problems.join("\n");
        assert!(
            p.contains(
                "r-0-7 execution 1: ExternalEventPersistent \"e\" with data \"1|event 1\" 2 times (events 5, 9)"
            ),
            "{p}"
        );
    }
}
