//! No lost acknowledged work: every instance the generator saw end during
//! the run (the cluster tracker's completion query read it terminal) must
//! still be terminal, with the same outcome, when the run is over. On one
//! Postgres server a commit cannot be undone, so this holds unless something
//! rewrote the store; across a failover with asynchronous replication,
//! acknowledged transactions can be missing on the new primary, and this is
//! where it shows, instance by instance.

use std::collections::HashMap;

use sqlx::Row;

use crate::db::{RunDb, db_err};
use crate::error::CoordinatorError;
use crate::model::audit::{Audit, LostWork};
use loadgen_common::schema::GENERATOR_SQL_MARK;

/// Instances named in the result (the count is always whole).
const KEPT: usize = 50;
/// Instances read per query.
const BATCH: usize = 5000;

/// The instances of `ended` (id, completed) whose final state differs, read
/// as the completion query reads it: the latest execution (an execution
/// without an instance row is the orphan check's to name, not lost).
pub async fn check(provider: &RunDb, ended: &[(String, bool)]) -> Result<Vec<LostWork>, CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "{GENERATOR_SQL_MARK} SELECT DISTINCT ON (instance_id) instance_id, status FROM {s}.executions \
         WHERE instance_id = ANY($1) ORDER BY instance_id, execution_id DESC"
    );
    let mut lost = Vec::new();
    for chunk in ended.chunks(BATCH) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let rows = sqlx::query(&sql)
            .bind(&ids)
            .fetch_all(provider.pool())
            .await
            .map_err(|e| db_err("reading the final state of the instances seen ending", e))?;
        let mut now: HashMap<String, String> = HashMap::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0).map_err(|e| db_err("reading an instance", e))?;
            let status: String = r.try_get(1).map_err(|e| db_err("reading an instance", e))?;
            now.insert(id, status);
        }
        for (id, completed) in chunk {
            let seen = if *completed { "Completed" } else { "Failed" };
            let finally = now.get(id).map_or("no execution", String::as_str);
            if finally != seen {
                lost.push(LostWork { instance: id.clone(), seen: seen.into(), finally: finally.to_string() });
            }
        }
    }
    Ok(lost)
}

/// Record the check in the audit: a problem naming the first instances.
pub fn record(a: &mut Audit, seen: u64, mut lost: Vec<LostWork>) {
    a.acknowledged_checked = seen;
    a.lost_acknowledged = lost.len() as u64;
    if !lost.is_empty() {
        let named: Vec<String> = lost.iter().take(3).map(LostWork::line).collect();
        a.problems.push(format!(
            "no lost acknowledged work: {} of {seen} instance(s) seen ending during the run are not so now, e.g. {}",
            lost.len(),
            named.join(" | ")
        ));
    }
    lost.truncate(KEPT);
    a.lost_work = lost;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_seen_done_and_later_undone_fails_the_audit() {
        let mut a = Audit::default();
        record(&mut a, 10, Vec::new());
        assert!(a.passed() && a.acknowledged_checked == 10);
        let lost = LostWork { instance: "r-0-3".into(), seen: "Completed".into(), finally: "Running".into() };
        record(&mut a, 10, vec![lost]);
        assert_eq!(a.lost_acknowledged, 1);
        assert_eq!(
            a.problems,
            [
                "no lost acknowledged work: 1 of 10 instance(s) seen ending during the run are not so now, e.g. r-0-3: seen Completed during the run, now Running"
            ]
        );
    }
}
