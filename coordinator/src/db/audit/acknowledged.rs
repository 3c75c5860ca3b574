//! No lost acknowledged work: every instance the generator saw end during
//! the run (the cluster tracker's completion query read it terminal, with
//! the md5 of its output and its history's length) must still be terminal,
//! with the same status and output and no shorter history, when the run is
//! over. On one Postgres server a commit cannot be undone, so this holds
//! unless something rewrote the store; across a failover with asynchronous
//! replication, acknowledged transactions can be missing on the new
//! primary, and this is where it shows, instance by instance.

use std::collections::HashMap;

use loadgen_common::tracker::{Fingerprint, Finished, Terminal};
use sqlx::Row;

use crate::db::{RunDb, db_err};
use crate::error::CoordinatorError;
use crate::model::audit::{Audit, LostWork};
use loadgen_common::schema::GENERATOR_SQL_MARK;

/// Instances named in the result (the counts are always whole).
const KEPT: usize = 50;
/// Instances read per query.
const BATCH: usize = 5000;

/// An instance as it was seen ending during the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub instance: String,
    pub completed: bool,
    pub fingerprint: Option<Fingerprint>,
}

impl Seen {
    pub fn of(f: &Finished) -> Self {
        Seen {
            instance: f.instance_id.clone(),
            completed: f.state == Terminal::Completed,
            fingerprint: f.fingerprint.clone(),
        }
    }

    fn status(&self) -> &'static str {
        if self.completed { "Completed" } else { "Failed" }
    }
}

/// An instance's state at the end: its latest execution's status, output md5
/// and history length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Now {
    pub status: String,
    pub fingerprint: Fingerprint,
}

/// How `seen` differs from `now` (`None`: not at all).
pub fn compare(seen: &Seen, now: Option<&Now>) -> Option<LostWork> {
    let (status, instance) = (seen.status(), seen.instance.clone());
    let Some(now) = now else {
        return Some(LostWork {
            instance,
            seen: status.into(),
            finally: "no execution".into(),
            differs: "status".into(),
        });
    };
    if now.status != status {
        return Some(LostWork { instance, seen: status.into(), finally: now.status.clone(), differs: "status".into() });
    }
    let was = seen.fingerprint.as_ref()?;
    let md5 = |f: &Fingerprint| f.output_md5.as_deref().map_or("none".to_string(), |m| m.chars().take(8).collect());
    if was.output_md5 != now.fingerprint.output_md5 {
        return Some(LostWork {
            instance,
            seen: format!("{status} (output md5 {})", md5(was)),
            finally: format!("{} (output md5 {})", now.status, md5(&now.fingerprint)),
            differs: "output".into(),
        });
    }
    if now.fingerprint.events < was.events {
        return Some(LostWork {
            instance,
            seen: format!("{status} with {} history events", was.events),
            finally: format!("{} with {} history events", now.status, now.fingerprint.events),
            differs: "history".into(),
        });
    }
    None
}

/// The instances of `ended` whose final state differs, read as the
/// completion query reads them: the latest execution (an execution without
/// an instance row is the orphan check's to name, not lost).
pub async fn check(provider: &RunDb, ended: &[Seen]) -> Result<Vec<LostWork>, CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "{GENERATOR_SQL_MARK} SELECT DISTINCT ON (e.instance_id) e.instance_id, e.status, md5(e.output), \
           (SELECT count(*) FROM {s}.history h WHERE h.instance_id = e.instance_id AND h.execution_id = e.execution_id) \
         FROM {s}.executions e WHERE e.instance_id = ANY($1) ORDER BY e.instance_id, e.execution_id DESC"
    );
    let mut lost = Vec::new();
    for chunk in ended.chunks(BATCH) {
        let ids: Vec<&str> = chunk.iter().map(|s| s.instance.as_str()).collect();
        let rows = sqlx::query(&sql)
            .bind(&ids)
            .fetch_all(provider.pool())
            .await
            .map_err(|e| db_err("reading the final state of the instances seen ending", e))?;
        let mut now: HashMap<String, Now> = HashMap::with_capacity(rows.len());
        for r in rows {
            let read = |e| db_err("reading an instance", e);
            let id: String = r.try_get(0).map_err(read)?;
            let status: String = r.try_get(1).map_err(read)?;
            let output_md5: Option<String> = r.try_get(2).map_err(read)?;
            let events: i64 = r.try_get(3).map_err(read)?;
            now.insert(id, Now { status, fingerprint: Fingerprint { output_md5, events } });
        }
        lost.extend(chunk.iter().filter_map(|s| compare(s, now.get(&s.instance))));
    }
    Ok(lost)
}

/// Record the check in the audit: a problem for each kind of difference,
/// naming the first instances.
pub fn record(a: &mut Audit, seen: u64, mut lost: Vec<LostWork>) {
    a.acknowledged_checked = seen;
    let of = |what: &str| lost.iter().filter(|l| l.differs == what).collect::<Vec<_>>();
    let said = [
        ("status", "seen ending during the run are not so now"),
        ("output", "seen ending during the run have another output now"),
        ("history", "seen ending during the run have a shorter history now"),
    ];
    let mut counts = [0u64; 3];
    for (i, (what, says)) in said.iter().enumerate() {
        let these = of(what);
        counts[i] = these.len() as u64;
        if !these.is_empty() {
            let named: Vec<String> = these.iter().take(3).map(|l| l.line()).collect();
            a.problems.push(format!(
                "no lost acknowledged work: {} of {seen} instance(s) {says}, e.g. {}",
                these.len(),
                named.join(" | ")
            ));
        }
    }
    [a.lost_acknowledged, a.changed_output, a.shortened_history] = counts;
    lost.truncate(KEPT);
    a.lost_work = lost;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: &str, md5: &str, events: i64) -> Seen {
        Seen {
            instance: id.into(),
            completed: true,
            fingerprint: Some(Fingerprint { output_md5: Some(md5.into()), events }),
        }
    }

    fn now(status: &str, md5: &str, events: i64) -> Now {
        Now { status: status.into(), fingerprint: Fingerprint { output_md5: Some(md5.into()), events } }
    }

    #[test]
    fn work_seen_done_and_later_undone_fails_the_audit() {
        let mut a = Audit::default();
        record(&mut a, 10, Vec::new());
        assert!(a.passed() && a.acknowledged_checked == 10);
        let lost = compare(&seen("r-0-3", "aaaa", 9), Some(&now("Running", "aaaa", 7))).expect("lost");
        record(&mut a, 10, vec![lost]);
        assert_eq!(a.lost_acknowledged, 1);
        assert_eq!(
            a.problems,
            [
                "no lost acknowledged work: 1 of 10 instance(s) seen ending during the run are not so now, e.g. r-0-3: seen Completed during the run, now Running"
            ]
        );
    }

    #[test]
    fn the_same_status_with_another_output_or_a_shorter_history_is_named() {
        let s = seen("r-1-4", "0123456789abcdef", 9);
        assert_eq!(compare(&s, Some(&now("Completed", "0123456789abcdef", 9))), None);
        assert_eq!(compare(&s, Some(&now("Completed", "0123456789abcdef", 11))), None, "a longer history is not loss");
        let gone = compare(&s, None).expect("gone");
        assert_eq!((gone.finally.as_str(), gone.differs.as_str()), ("no execution", "status"));
        let other = compare(&s, Some(&now("Completed", "fedcba9876543210", 9))).expect("output");
        assert_eq!(
            other.line(),
            "r-1-4: seen Completed (output md5 01234567) during the run, now Completed (output md5 fedcba98)"
        );
        let short = compare(&s, Some(&now("Completed", "0123456789abcdef", 5))).expect("history");
        assert_eq!(short.differs, "history");
        let mut a = Audit::default();
        record(&mut a, 40, vec![gone, other, short]);
        assert_eq!((a.lost_acknowledged, a.changed_output, a.shortened_history), (1, 1, 1));
        assert_eq!(a.problems.len(), 3, "{:?}", a.problems);
        assert!(a.problems[2].contains("1 of 40 instance(s) seen ending during the run have a shorter history now, e.g. r-1-4: seen Completed with 9 history events during the run, now Completed with 5 history events"), "{:?}", a.problems);
        // Where the fingerprint was not read, only the status is compared.
        let bare = Seen { fingerprint: None, ..seen("r-2-0", "x", 1) };
        assert_eq!(compare(&bare, Some(&now("Completed", "y", 0))), None);
    }
}
