//! Which errors failed the orchestrations a fault took: each execution that
//! ended Failed for a reason no scenario designs (infrastructure,
//! configuration, poison), read after the run with its stored message and
//! its end time, is put in the window of the fault it ended in (from the
//! fault's start until it recovered, or the run ended) under the SQLSTATE
//! its message is Postgres's wording of, and the provider call that met it.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::db::{RunDb, db_err};
use crate::error::CoordinatorError;
use crate::model::FaultReport;
use loadgen_common::schema::GENERATOR_SQL_MARK;
use loadgen_scenarios::expect::category_of;

/// Postgres's wording of the errors a change of server brings, and their SQLSTATE.
const WORDING: [(&str, &str); 14] = [
    ("terminating connection due to administrator command", "57P01"),
    ("terminating connection due to unexpected postmaster exit", "57P01"),
    ("terminating connection because of crash of another server process", "57P02"),
    ("the database system is shutting down", "57P03"),
    ("the database system is starting up", "57P03"),
    ("the database system is in recovery mode", "57P03"),
    ("the database system is not yet accepting connections", "57P03"),
    ("in a read-only transaction", "25006"),
    ("deadlock detected", "40P01"),
    ("could not serialize access", "40001"),
    ("canceling statement due to lock timeout", "55P03"),
    ("canceling statement due to", "57014"),
    ("too many clients already", "53300"),
    ("error communicating with database", "connection lost"),
];

/// "57P01 in ack_orchestration_item" for a stored failure message such as
/// `infrastructure:ack_orchestration_item: Database error: ... terminating
/// connection due to administrator command`.
pub fn label(message: &str) -> String {
    let call = message.split(':').nth(1).map(str::trim).filter(|c| !c.is_empty() && !c.contains(' '));
    // The sqlstate fault says its code in its own words.
    let injected = message.split_once("sqlstate fault (").and_then(|(_, rest)| rest.get(..5));
    let code =
        injected.or_else(|| WORDING.iter().find(|(w, _)| message.contains(w)).map(|(_, c)| *c)).unwrap_or("other");
    match call {
        Some(call) => format!("{code} in {call}"),
        None => code.to_string(),
    }
}

/// The failures that are nobody's design, as (seconds after `start`, label).
pub async fn read(
    provider: &RunDb,
    start: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(f64, String)>, CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "{GENERATOR_SQL_MARK} SELECT output, completed_at FROM {s}.executions \
         WHERE status = 'Failed' AND completed_at IS NOT NULL \
           AND (output LIKE 'infrastructure:%' OR output LIKE 'poison:%' OR output LIKE 'nondeterministic%')"
    );
    let rows =
        sqlx::query(&sql).fetch_all(provider.pool()).await.map_err(|e| db_err("reading the failed executions", e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let output: Option<String> = r.try_get(0).map_err(|e| db_err("reading a failure", e))?;
        let at: chrono::DateTime<chrono::Utc> = r.try_get(1).map_err(|e| db_err("reading a failure", e))?;
        let output = output.unwrap_or_default();
        if category_of(&output) != "application" {
            out.push(((at - start).num_milliseconds() as f64 / 1000.0, label(&output)));
        }
    }
    Ok(out)
}

/// Put each failure in the window of the fault it ended in.
pub fn attribute(faults: &mut [FaultReport], failures: &[(f64, String)]) {
    for f in faults.iter_mut() {
        let from = f.event.at_s;
        let to = f.recovery_s.map_or(f64::INFINITY, |r| f.event.end_s + r);
        let mut by: BTreeMap<String, u64> = BTreeMap::new();
        for (_, label) in failures.iter().filter(|(t, _)| *t >= from && *t <= to) {
            *by.entry(label.clone()).or_default() += 1;
        }
        f.failed_by_error = by;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FaultEvent;

    #[test]
    fn failures_are_named_by_sqlstate_and_call_and_put_in_their_fault() {
        let cut = "infrastructure:ack_orchestration_item: Database error: error returned from database: terminating connection due to administrator command";
        assert_eq!(label(cut), "57P01 in ack_orchestration_item");
        let ro = "infrastructure:ack_orchestration_item: Database error: error returned from database: cannot execute INSERT in a read-only transaction";
        assert_eq!(label(ro), "25006 in ack_orchestration_item");
        assert_eq!(label("poison: message exceeded max attempts"), "other");
        let injected = "infrastructure:ack_orchestration_item: Database error: error returned from database: injected by the load generator's sqlstate fault (40001 serialization_failure)";
        assert_eq!(label(injected), "40001 in ack_orchestration_item");
        let report = |at_s: f64, end_s: f64, recovery_s: Option<f64>| FaultReport {
            event: FaultEvent { kind: "switchover".into(), at_s, end_s, ..Default::default() },
            recovery_s,
            ..Default::default()
        };
        let mut faults = [report(10.0, 12.0, Some(2.0)), report(20.0, 30.0, None)];
        let failures =
            [(9.0, label(cut)), (11.0, label(cut)), (13.9, label(ro)), (15.0, label(cut)), (40.0, label(cut))];
        attribute(&mut faults, &failures);
        let of = |i: usize| faults[i].failed_by_error.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>();
        assert_eq!(of(0), ["25006 in ack_orchestration_item: 1", "57P01 in ack_orchestration_item: 1"]);
        assert_eq!(of(1), ["57P01 in ack_orchestration_item: 1"], "not recovered: until the run ended");
    }
}
