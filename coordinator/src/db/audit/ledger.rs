//! Exactly once, held against evidence kept outside the database: the
//! activity ledger (`loadgen_common::ledger`), written by each activity as
//! it ran and carried to the coordinator with the agents' reports, compared
//! with the history's schedulings and completions. duroxide does not show
//! an activity its event id, so a scheduled activity is known by instance,
//! execution, name and input (md5): schedulings, completions and runs of one
//! key are counted and compared.
//!
//! - a run beyond its schedulings ran again: at least once, as duroxide
//!   promises when a lease is lost while an activity runs (noted, named);
//! - a successful completion in the history that no activity ran (judged
//!   only when the ledger is whole) fails the audit;
//! - a successful run of an activity the history has no scheduling of
//!   fails the audit: the history lost work that ran.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::db::RunDb;
use crate::db::db_err;
use crate::error::CoordinatorError;
use crate::model::audit::Audit;
use crate::model::ledger::{LedgerCheck, LedgerEntry};
use loadgen_common::ledger::{ActivityKey, Ledger, Runs};
use loadgen_common::schema::GENERATOR_SQL_MARK;

/// Entries named in the result, per kind (the counts are always whole).
const KEPT: usize = 20;

/// Schedulings and successful completions of one scheduled activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InHistory {
    pub scheduled: u64,
    pub completed: u64,
}

/// The history's scheduled activities of instances matching `pattern`.
pub async fn read(provider: &RunDb, pattern: &str) -> Result<BTreeMap<ActivityKey, InHistory>, CoordinatorError> {
    let s = provider.schema_name();
    let sql = format!(
        "{GENERATOR_SQL_MARK} WITH s AS ( \
           SELECT instance_id, execution_id::bigint AS e, event_id::bigint AS id, \
                  coalesce(event_data::jsonb->>'name', '') AS name, \
                  md5(coalesce(event_data::jsonb->>'input', '')) AS input \
           FROM {s}.history WHERE instance_id LIKE $1 AND event_data::jsonb->>'type' = 'ActivityScheduled'), \
         c AS ( \
           SELECT instance_id, execution_id::bigint AS e, (event_data::jsonb->>'source_event_id')::bigint AS src \
           FROM {s}.history WHERE instance_id LIKE $1 AND event_data::jsonb->>'type' = 'ActivityCompleted') \
         SELECT s.instance_id, s.e, s.name, s.input, count(DISTINCT s.id)::bigint, count(c.src)::bigint \
         FROM s LEFT JOIN c ON c.instance_id = s.instance_id AND c.e = s.e AND c.src = s.id \
         GROUP BY 1, 2, 3, 4"
    );
    let rows = sqlx::query(&sql)
        .bind(pattern)
        .fetch_all(provider.pool())
        .await
        .map_err(|e| db_err("reading the history's scheduled activities", e))?;
    let mut out = BTreeMap::new();
    for r in rows {
        let get = |e| db_err("reading a scheduled activity", e);
        let key = ActivityKey {
            instance: r.try_get(0).map_err(get)?,
            execution: r.try_get::<i64, _>(1).map_err(get)?.max(0) as u64,
            activity: r.try_get(2).map_err(get)?,
            input_md5: r.try_get(3).map_err(get)?,
        };
        let h = InHistory {
            scheduled: r.try_get::<i64, _>(4).map_err(get)?.max(0) as u64,
            completed: r.try_get::<i64, _>(5).map_err(get)?.max(0) as u64,
        };
        out.insert(key, h);
    }
    Ok(out)
}

/// Compare the ledger (its instances of `run_prefix` only) with the history.
pub fn compare(ledger: &Ledger, history: &BTreeMap<ActivityKey, InHistory>, run_prefix: &str) -> LedgerCheck {
    let mut c = LedgerCheck {
        scheduled: history.values().map(|h| h.scheduled).sum(),
        incomplete: ledger.incomplete.clone(),
        ..LedgerCheck::default()
    };
    let none = Runs::default();
    let mut named: BTreeMap<&str, Vec<LedgerEntry>> = BTreeMap::new();
    let mut name = |kind: &'static str, key: &ActivityKey, h: InHistory, runs: &Runs| {
        let list = named.entry(kind).or_default();
        if list.len() < KEPT {
            list.push(LedgerEntry {
                kind: kind.into(),
                instance: key.instance.clone(),
                execution: key.execution,
                activity: key.activity.clone(),
                input_md5: key.input_md5.clone(),
                scheduled: h.scheduled,
                completed: h.completed,
                ran_ok: runs.ok,
                ran_failed: runs.failed,
                agents: runs.agents.iter().copied().collect(),
            });
        }
    };
    for (key, runs) in ledger.runs.iter().filter(|(k, _)| k.instance.starts_with(run_prefix)) {
        c.executions += runs.total();
        let h = history.get(key).copied().unwrap_or_default();
        if h.scheduled == 0 {
            if runs.ok > 0 {
                c.unrecorded += runs.ok;
                name("unrecorded", key, h, runs);
            }
        } else if runs.total() > h.scheduled {
            c.ran_again += runs.total() - h.scheduled;
            name("ran_again", key, h, runs);
        }
    }
    if c.whole() {
        for (key, h) in history {
            let runs = ledger.runs.get(key).unwrap_or(&none);
            if h.completed > runs.ok {
                c.completed_unrun += h.completed - runs.ok;
                name("completed_unrun", key, *h, runs);
            }
        }
    }
    // The failures first, then what is only noted.
    for kind in ["completed_unrun", "unrecorded", "ran_again"] {
        c.named.extend(named.remove(kind).unwrap_or_default());
    }
    c
}

/// Record the comparison in the audit: what fails it, what is noted.
pub fn record(a: &mut Audit, c: LedgerCheck) {
    let first = |kind: &str| -> String {
        let lines: Vec<String> = c.named.iter().filter(|e| e.kind == kind).take(3).map(LedgerEntry::line).collect();
        lines.join(" | ")
    };
    if c.completed_unrun > 0 {
        a.problems.push(format!(
            "exactly once (activity ledger): {} activity completion(s) in the history that no agent's activity ran, e.g. {}",
            c.completed_unrun,
            first("completed_unrun")
        ));
    }
    if c.unrecorded > 0 {
        a.problems.push(format!(
            "exactly once (activity ledger): {} activity run(s) that returned, of activities the history has no scheduling of (the history lost work that ran), e.g. {}",
            c.unrecorded,
            first("unrecorded")
        ));
    }
    if c.ran_again > 0 {
        a.notes.push(format!(
            "{} activity execution(s) ran again beyond their scheduling (duroxide runs an activity at least once: a lease lost while it ran), e.g. {}",
            c.ran_again,
            first("ran_again")
        ));
    }
    a.activity_ledger = Some(c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_common::ledger::ActivityRun;

    fn key(instance: &str, input: &str) -> ActivityKey {
        ActivityKey { instance: instance.into(), execution: 1, activity: "Work".into(), input_md5: input.into() }
    }

    fn run(instance: &str, input: &str, ok: bool) -> ActivityRun {
        ActivityRun { instance: instance.into(), execution: 1, activity: "Work".into(), input_md5: input.into(), ok }
    }

    #[test]
    fn a_ledger_that_agrees_with_the_history_passes() {
        let mut l = Ledger::default();
        l.add(0, [run("r-0-1", "a", false), run("r-0-1", "a", true), run("r-0-2", "b", true)]);
        l.add(0, [run("other-0-1", "a", true)]);
        let h = BTreeMap::from([
            (key("r-0-1", "a"), InHistory { scheduled: 2, completed: 1 }),
            (key("r-0-2", "b"), InHistory { scheduled: 1, completed: 1 }),
        ]);
        let c = compare(&l, &h, "r-");
        assert_eq!((c.executions, c.scheduled, c.ran_again, c.completed_unrun, c.unrecorded), (3, 3, 0, 0, 0));
        let mut a = Audit::default();
        record(&mut a, c);
        assert!(a.passed() && a.notes.is_empty(), "{:?}", a.problems);
        assert!(a.activity_ledger.is_some());
    }

    #[test]
    fn each_disagreement_is_named_by_instance_and_the_unrun_completion_only_on_a_whole_ledger() {
        let mut l = Ledger::default();
        l.add(0, [run("r-0-1", "a", true)]);
        l.add(1, [run("r-0-1", "a", true), run("r-0-3", "c", true)]);
        let h = BTreeMap::from([
            (key("r-0-1", "a"), InHistory { scheduled: 1, completed: 1 }),
            (key("r-0-2", "b"), InHistory { scheduled: 1, completed: 1 }),
        ]);
        let c = compare(&l, &h, "r-");
        assert_eq!((c.ran_again, c.completed_unrun, c.unrecorded), (1, 1, 1));
        let kinds: Vec<&str> = c.named.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["completed_unrun", "unrecorded", "ran_again"]);
        let mut a = Audit::default();
        record(&mut a, c);
        let p = a.problems.join("\n");
        assert!(p.contains("1 activity completion(s) in the history that no agent's activity ran, e.g. r-0-2 execution 1: activity Work (input b) scheduled 1, completed 1 in the history, ran 0 time(s) (no agent)"), "{p}");
        assert!(p.contains("the history lost work that ran), e.g. r-0-3 execution 1"), "{p}");
        assert!(
            a.notes[0].contains("r-0-1 execution 1: activity Work (input a) scheduled 1, completed 1 in the history, ran 2 time(s) (agents 0, 1)"),
            "{:?}",
            a.notes
        );
        l.incomplete("agent 1 was lost");
        let c = compare(&l, &h, "r-");
        assert_eq!((c.ran_again, c.completed_unrun, c.unrecorded), (1, 0, 1));
    }
}
