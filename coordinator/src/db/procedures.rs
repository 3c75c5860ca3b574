//! Where the provider spends the database's time: the run schema's stored
//! procedures from `pg_stat_user_functions` (needs `track_functions` = pl)
//! and its statements from `pg_stat_statements` (needs the extension loaded
//! and created), read once before the load and once after the drain; the
//! difference is the run's. The throwaway Postgres turns both on; a user's
//! server that lacks them is told which setting to enable.
//!
//! The dequeues' empty share comes from `pg_stat_statements` (a fetch
//! returns one row or none). Whether the queue held ready work while a fetch
//! came back empty is judged by the second: the sampler reads the fetches'
//! calls and rows next to the queue depths once a second
//! ([`FetchProbe`]), and a second counts as "ready" when its queue held
//! visible, unlocked messages at both of its samples.

use std::collections::BTreeMap;

use crate::db::RunDb;
use loadgen_common::schema::GENERATOR_SQL_MARK;
use sqlx::Row;

use crate::model::procedures::{FetchRow, FunctionRow, ProcedureReport, StatementRow};
use crate::model::{DbSample, FetchSample};

/// The provider's two dequeues.
pub const FETCHES: [&str; 2] = ["fetch_orchestration_item", "fetch_work_item"];
/// Statements kept in the result (by total time).
const STATEMENTS_KEPT: usize = 25;
/// Longest statement text kept.
const STATEMENT_CHARS: usize = 160;

/// What the server offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Availability {
    pub functions: bool,
    /// The schema holding the `pg_stat_statements` view, when it is usable.
    pub statements_in: Option<String>,
    pub advice: Vec<String>,
}

/// Cumulative counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    functions: BTreeMap<String, (u64, f64, f64)>,
    statements: BTreeMap<String, (u64, f64, u64)>,
}

/// Reads the dequeues' counters for the once-a-second sampler.
#[derive(Clone, Debug)]
pub struct FetchProbe {
    sql: String,
    patterns: [String; 2],
}

fn get_u64(r: &sqlx::postgres::PgRow, i: usize) -> u64 {
    r.try_get::<i64, _>(i).map_or(0, |v| v.max(0) as u64)
}

fn get_f64(r: &sqlx::postgres::PgRow, i: usize) -> f64 {
    r.try_get::<f64, _>(i).unwrap_or(0.0)
}

/// Which statistics the server keeps, and what to enable for the others.
pub async fn availability(provider: &RunDb) -> Availability {
    let mut a = Availability::default();
    let row = sqlx::query(
        "SELECT current_setting('track_functions'), current_setting('shared_preload_libraries'), \
                (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements')",
    )
    .fetch_one(provider.pool())
    .await;
    let Ok(row) = row else {
        a.advice.push("could not read the server's statistics settings".into());
        return a;
    };
    let track: String = row.try_get(0).unwrap_or_default();
    let preload: String = row.try_get(1).unwrap_or_default();
    let ext: Option<String> = row.try_get(2).ok().flatten();
    a.functions = track == "pl" || track == "all";
    if !a.functions {
        a.advice.push(format!(
            "stored-procedure times need track_functions = 'pl' (it is '{track}'): ALTER SYSTEM SET track_functions = 'pl'; SELECT pg_reload_conf();"
        ));
    }
    match (preload.contains("pg_stat_statements"), ext) {
        (true, Some(schema)) => {
            // Readable by this user? (A server may restrict it.)
            let probe = sqlx::query(&format!("SELECT 1 FROM {schema}.pg_stat_statements LIMIT 1"))
                .fetch_optional(provider.pool())
                .await;
            match probe {
                Ok(_) => a.statements_in = Some(schema),
                Err(e) => a.advice.push(format!("pg_stat_statements is installed but not readable here: {e}")),
            }
        }
        (false, _) => a.advice.push(
            "statement times and the empty-fetch share need pg_stat_statements: add it to shared_preload_libraries (restart), then CREATE EXTENSION pg_stat_statements".into(),
        ),
        (true, None) => a.advice.push(
            "statement times and the empty-fetch share need the extension in this database: CREATE EXTENSION pg_stat_statements".into(),
        ),
    }
    a
}

/// The counters now, for `schema`'s functions and statements.
pub async fn snapshot(provider: &RunDb, schema: &str, a: &Availability) -> Snapshot {
    let mut s = Snapshot::default();
    if a.functions {
        let rows = sqlx::query(
            "SELECT funcname::text, sum(calls)::bigint, sum(total_time)::float8, sum(self_time)::float8 \
             FROM pg_stat_user_functions WHERE schemaname = $1 GROUP BY funcname",
        )
        .bind(schema)
        .fetch_all(provider.pool())
        .await
        .unwrap_or_default();
        for r in rows {
            let name: String = r.try_get(0).unwrap_or_default();
            s.functions.insert(name, (get_u64(&r, 1), get_f64(&r, 2), get_f64(&r, 3)));
        }
    }
    if let Some(ext) = &a.statements_in {
        let rows = sqlx::query(&format!(
            "SELECT query, sum(calls)::bigint, sum(total_exec_time)::float8, sum(rows)::bigint \
             FROM {ext}.pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query LIKE $1 \
             GROUP BY query"
        ))
        .bind(format!("%{schema}.%"))
        .fetch_all(provider.pool())
        .await
        .unwrap_or_default();
        for r in rows {
            let text: String = r.try_get(0).unwrap_or_default();
            s.statements.insert(text, (get_u64(&r, 1), get_f64(&r, 2), get_u64(&r, 3)));
        }
    }
    s
}

impl FetchProbe {
    /// A probe of `schema`'s dequeues, when `pg_stat_statements` is usable.
    pub fn new(schema: &str, a: &Availability) -> Option<Self> {
        let ext = a.statements_in.as_ref()?;
        let sql = format!(
            "{GENERATOR_SQL_MARK} SELECT coalesce(sum(calls) FILTER (WHERE query LIKE $2), 0)::bigint, \
                    coalesce(sum(rows) FILTER (WHERE query LIKE $2), 0)::bigint, \
                    coalesce(sum(calls) FILTER (WHERE query LIKE $3), 0)::bigint, \
                    coalesce(sum(rows) FILTER (WHERE query LIKE $3), 0)::bigint \
             FROM {ext}.pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query LIKE $1"
        );
        let patterns = FETCHES.map(|f| format!("%{schema}.{f}(%"));
        Some(FetchProbe { sql, patterns })
    }

    /// Cumulative (orchestration calls, rows, work calls, rows).
    pub async fn read(&self, provider: &RunDb, schema: &str) -> Result<[u64; 4], sqlx::Error> {
        let r = sqlx::query(&self.sql)
            .bind(format!("%{schema}.fetch_%"))
            .bind(&self.patterns[0])
            .bind(&self.patterns[1])
            .fetch_one(provider.pool())
            .await?;
        Ok([get_u64(&r, 0), get_u64(&r, 1), get_u64(&r, 2), get_u64(&r, 3)])
    }
}

/// The fetches of one second, from two cumulative readings.
pub fn fetch_sample(before: [u64; 4], now: [u64; 4]) -> FetchSample {
    let d = |i: usize| now[i].saturating_sub(before[i]);
    FetchSample {
        orchestration_calls: d(0),
        orchestration_empty: d(0).saturating_sub(d(1)),
        work_calls: d(2),
        work_empty: d(2).saturating_sub(d(3)),
    }
}

/// A statement's label: the procedure it calls, or its text with the
/// schema written `<schema>`.
fn label(text: &str, schema: &str) -> (String, bool) {
    let generator = text.trim_start().starts_with(GENERATOR_SQL_MARK);
    let prefix = format!("{schema}.");
    if !generator && let Some(at) = text.find(&prefix) {
        let rest = &text[at + prefix.len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if rest[name.len()..].starts_with('(') && !name.is_empty() {
            // The database sampler reads the queue depths; the runtimes do
            // not (their gauge poll is off).
            let by_sampler = name == "get_queue_depths";
            return (name, by_sampler);
        }
    }
    let short: String = text.replace(&prefix, "<schema>.").split_whitespace().collect::<Vec<_>>().join(" ");
    let short = if short.chars().count() > STATEMENT_CHARS {
        format!("{}...", short.chars().take(STATEMENT_CHARS).collect::<String>())
    } else {
        short
    };
    (short, generator)
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part * 100.0 / whole } else { 0.0 }
}

/// The run's report from the snapshots around it and the sampled seconds.
pub fn report(
    a: &Availability,
    schema: &str,
    before: &Snapshot,
    after: &Snapshot,
    samples: &[DbSample],
) -> ProcedureReport {
    let mut reset = false;
    let mut functions: Vec<FunctionRow> = after
        .functions
        .iter()
        .filter_map(|(name, &(calls, total, own))| {
            let (c0, t0, s0) = before.functions.get(name).copied().unwrap_or_default();
            if calls < c0 {
                reset = true;
            }
            let (calls, total_ms, self_ms) =
                if calls < c0 { (calls, total, own) } else { (calls - c0, total - t0, own - s0) };
            (calls > 0).then(|| FunctionRow {
                name: name.clone(),
                calls,
                total_ms,
                self_ms,
                mean_ms: total_ms / calls as f64,
                share_pct: 0.0,
            })
        })
        .collect();
    let self_total: f64 = functions.iter().map(|f| f.self_ms).sum();
    for f in &mut functions {
        f.share_pct = pct(f.self_ms, self_total);
    }
    functions.sort_by(|x, y| y.self_ms.total_cmp(&x.self_ms));

    // Statements: the difference, merged by label (one procedure may be
    // called by several statement texts).
    let mut by_label: BTreeMap<(String, bool), (u64, f64, u64)> = BTreeMap::new();
    let mut fetch_totals: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (text, &(calls, total, rows)) in &after.statements {
        let (c0, t0, r0) = before.statements.get(text).copied().unwrap_or_default();
        if calls < c0 {
            reset = true;
        }
        let (calls, total, rows) =
            if calls < c0 { (calls, total, rows) } else { (calls - c0, total - t0, rows.saturating_sub(r0)) };
        if calls == 0 {
            continue;
        }
        let key = label(text, schema);
        if let Some(f) = FETCHES.iter().find(|f| !key.1 && key.0 == **f) {
            let e = fetch_totals.entry(f).or_default();
            e.0 += calls;
            e.1 += rows;
        }
        let e = by_label.entry(key).or_default();
        e.0 += calls;
        e.1 += total;
        e.2 += rows;
    }
    let statement_total: f64 = by_label.values().map(|v| v.1).sum();
    let mut statements: Vec<StatementRow> = by_label
        .into_iter()
        .map(|((statement, generator), (calls, total_ms, rows))| StatementRow {
            statement,
            generator,
            calls,
            total_ms,
            mean_ms: total_ms / calls as f64,
            rows,
            share_pct: pct(total_ms, statement_total),
        })
        .collect();
    statements.sort_by(|x, y| y.total_ms.total_cmp(&x.total_ms));
    statements.truncate(STATEMENTS_KEPT);

    let fetches = if a.statements_in.is_some() {
        FETCHES.iter().map(|f| fetch_row(f, fetch_totals.get(f).copied().unwrap_or_default(), samples)).collect()
    } else {
        Vec::new()
    };
    ProcedureReport {
        functions_tracked: a.functions,
        statements_tracked: a.statements_in.is_some(),
        advice: a.advice.clone(),
        reset,
        functions,
        statements,
        fetches,
    }
}

/// One dequeue's row: its totals, and its seconds with ready work.
fn fetch_row(procedure: &str, (calls, rows): (u64, u64), samples: &[DbSample]) -> FetchRow {
    let orchestration = procedure == FETCHES[0];
    let depth = |s: &DbSample| if orchestration { s.orchestrator_queue } else { s.worker_queue };
    let (mut ready_calls, mut ready_empty, mut seconds) = (0, 0, 0);
    for pair in samples.windows(2) {
        let (prev, s) = (&pair[0], &pair[1]);
        let Some(f) = &s.fetches else { continue };
        if depth(prev) > 0 && depth(s) > 0 {
            let (c, e) = if orchestration {
                (f.orchestration_calls, f.orchestration_empty)
            } else {
                (f.work_calls, f.work_empty)
            };
            ready_calls += c;
            ready_empty += e;
            seconds += 1;
        }
    }
    let empty = calls.saturating_sub(rows);
    FetchRow {
        procedure: procedure.to_string(),
        calls,
        empty,
        empty_pct: pct(empty as f64, calls as f64),
        calls_while_ready: ready_calls,
        empty_while_ready: ready_empty,
        empty_while_ready_pct: pct(ready_empty as f64, ready_calls as f64),
        seconds_with_ready_work: seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_labelled_by_procedure_or_shortened() {
        let s = "loadgen_abc";
        assert_eq!(
            label("SELECT * FROM loadgen_abc.fetch_work_item($1, $2)", s),
            ("fetch_work_item".to_string(), false)
        );
        let (text, generator) = label("/* loadgen */ SELECT e.instance_id FROM loadgen_abc.executions e", s);
        assert!(generator && text.contains("<schema>.executions"), "{text}");
        let (text, generator) = label("UPDATE loadgen_abc.instances SET x = $1", s);
        assert!(!generator && text == "UPDATE <schema>.instances SET x = $1", "{text}");
    }

    #[test]
    fn the_run_is_the_difference_and_empty_fetches_are_judged_by_the_second() {
        let a = Availability { functions: true, statements_in: Some("public".into()), advice: vec![] };
        let s = "loadgen_x";
        let fetch = "SELECT * FROM loadgen_x.fetch_orchestration_item($1, $2, $3, $4)".to_string();
        let before = Snapshot {
            functions: BTreeMap::from([("ack_orchestration_item".into(), (10, 50.0, 40.0))]),
            statements: BTreeMap::from([(fetch.clone(), (100, 10.0, 20))]),
        };
        let after = Snapshot {
            functions: BTreeMap::from([
                ("ack_orchestration_item".into(), (110, 350.0, 340.0)),
                ("fetch_work_item".into(), (50, 100.0, 100.0)),
            ]),
            statements: BTreeMap::from([(fetch, (300, 110.0, 70))]),
        };
        // Three seconds: ready work at both ends of the second and third only.
        let sample = |q: u64, calls: u64, empty: u64| DbSample {
            orchestrator_queue: q,
            fetches: Some(FetchSample { orchestration_calls: calls, orchestration_empty: empty, ..Default::default() }),
            ..Default::default()
        };
        let samples = [sample(0, 0, 0), sample(3, 80, 60), sample(2, 70, 20), sample(0, 50, 50)];
        let r = report(&a, s, &before, &after, &samples);
        assert!(!r.reset);
        assert_eq!(r.functions[0].name, "ack_orchestration_item");
        assert_eq!((r.functions[0].calls, r.functions[0].self_ms), (100, 300.0));
        assert_eq!(r.functions[0].share_pct, 75.0);
        assert_eq!(r.dominant(), Some(("ack_orchestration_item", 75.0)));
        assert_eq!(r.statements[0].statement, "fetch_orchestration_item");
        assert_eq!((r.statements[0].calls, r.statements[0].rows), (200, 50));
        let f = r.fetch("fetch_orchestration_item").expect("row");
        assert_eq!((f.calls, f.empty, f.empty_pct), (200, 150, 75.0));
        // Only the second with ready work at both samples: 70 calls, 20 empty.
        assert_eq!((f.seconds_with_ready_work, f.calls_while_ready, f.empty_while_ready), (1, 70, 20));
        // A crash restart resets the counters: what follows it is kept, and said.
        let reset = Snapshot { functions: BTreeMap::from([("ack_orchestration_item".into(), (5, 9.0, 8.0))]), ..after };
        let r = report(&a, s, &before, &reset, &samples);
        assert!(r.reset && r.functions[0].calls == 5);
    }
}
