//! `sqlstate`: for the fault's duration, the server itself answers a share
//! (or every n-th) of the provider's calls of one stored procedure, or of
//! the statements that write one of its tables, with a genuine error of one
//! SQLSTATE: the provider reads exactly the ErrorResponse production would
//! send (code, message, severity ERROR), and classifies it as it would.
//!
//! How: the procedure's plpgsql body is wrapped, in place (`CREATE OR
//! REPLACE` with the same signature, so its oid and statistics stay), in a
//! block that raises the code first when the call is hit and otherwise runs
//! the original body unchanged; a table's writers get a statement trigger
//! that raises. Two sequences in the run schema count the calls and the
//! hits (a sequence is not rolled back with the failed call). Everything is
//! undone when the fault ends (the original definition, as
//! `pg_get_functiondef` gave it, is put back) and everything lives in the
//! run schema, so `coordinator cleanup` drops what a crashed run left.
//!
//! What it needs on a user's database: to own the run schema's functions and
//! tables, as the role that migrated them does.

use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Row;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "sqlstate",
    about: "the server answers a share (or every n-th) of the calls of one provider procedure, or of the writes to one table, with a genuine error of one SQLSTATE, for the duration",
    fields: &[
        (
            "code",
            "the SQLSTATE (40001, 40P01, 57P01, ...) or its condition name (serialization_failure, ...); an unknown one is refused with the list of known ones (required)",
        ),
        (
            "procedure",
            "the provider's stored procedure whose calls fail: ack_orchestration_item, fetch_orchestration_item, fetch_work_item, ack_worker, ... (this or table)",
        ),
        (
            "table",
            "the run schema's table whose writing statements fail: history, orchestrator_queue, worker_queue, instance_locks, executions, instances (this or procedure)",
        ),
        ("statement", "with table: which writes fail: insert, update, delete or write (all three; the default)"),
        ("share", "the share of the calls that fail, 0 < share <= 1 (this or every; default every call)"),
        ("every", "every n-th call fails, n >= 1 (this or share)"),
    ],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<Sqlstate>(fields)?)),
};

/// The SQLSTATEs the fault raises, with their condition names: the classes
/// production answers a provider with (and a few it must never retry).
/// Classes 00 to 02 are not errors and are not here.
pub const CODES: &[(&str, &str)] = &[
    ("40001", "serialization_failure"),
    ("40P01", "deadlock_detected"),
    ("40003", "statement_completion_unknown"),
    ("57P01", "admin_shutdown"),
    ("57P02", "crash_shutdown"),
    ("57P03", "cannot_connect_now"),
    ("57P04", "database_dropped"),
    ("57014", "query_canceled"),
    ("53300", "too_many_connections"),
    ("53200", "out_of_memory"),
    ("53100", "disk_full"),
    ("53400", "configuration_limit_exceeded"),
    ("55P03", "lock_not_available"),
    ("55006", "object_in_use"),
    ("55000", "object_not_in_prerequisite_state"),
    ("25006", "read_only_sql_transaction"),
    ("25P02", "in_failed_sql_transaction"),
    ("08000", "connection_exception"),
    ("08003", "connection_does_not_exist"),
    ("08006", "connection_failure"),
    ("0A000", "feature_not_supported"),
    ("23505", "unique_violation"),
    ("23503", "foreign_key_violation"),
    ("42P01", "undefined_table"),
    ("42883", "undefined_function"),
    ("42501", "insufficient_privilege"),
    ("54000", "program_limit_exceeded"),
    ("58000", "system_error"),
    ("58030", "io_error"),
    ("XX000", "internal_error"),
    ("XX001", "data_corrupted"),
];

/// duroxide-pg's stored procedures (0.1.36 to 0.1.38) that its provider
/// calls under load; a procedure a build's schema lacks fails the fault
/// when it is applied.
const PROCEDURES: &[&str] = &[
    "abandon_orchestration_item",
    "abandon_work_item",
    "ack_orchestration_item",
    "ack_worker",
    "append_history",
    "delete_instances_atomic",
    "enqueue_completion",
    "enqueue_message",
    "enqueue_orchestrator_work",
    "enqueue_worker_work",
    "fetch_history",
    "fetch_history_with_execution",
    "fetch_orchestration_item",
    "fetch_work_item",
    "get_custom_status",
    "get_execution_info",
    "get_instance_info",
    "get_kv_all_values",
    "get_kv_value",
    "get_queue_depths",
    "latest_execution_id",
    "list_executions",
    "list_instances",
    "renew_orchestration_item_lock",
    "renew_session_lock",
    "renew_work_item_lock",
];

/// The tables whose writers may fail.
const TABLES: [&str; 6] =
    ["history", "orchestrator_queue", "worker_queue", "instance_locks", "executions", "instances"];
const STATEMENTS: [&str; 4] = ["insert", "update", "delete", "write"];
/// Bound on changing a procedure or a table (it waits for their users).
const DDL_TIMEOUT: &str = "10s";

/// The code `name` (a SQLSTATE or a condition name), with its condition name.
pub fn code_of(name: &str) -> Option<(&'static str, &'static str)> {
    CODES.iter().copied().find(|(code, cond)| code.eq_ignore_ascii_case(name) || *cond == name)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sqlstate {
    code: Option<String>,
    procedure: Option<String>,
    table: Option<String>,
    statement: Option<String>,
    share: Option<f64>,
    every: Option<u64>,
}

impl Sqlstate {
    fn code(&self) -> (&'static str, &'static str) {
        self.code.as_deref().and_then(code_of).unwrap_or(("XX000", "internal_error"))
    }

    /// The SQL condition that hits a call, given its number `n` (from 1).
    fn hit_condition(&self) -> String {
        match (self.every, self.share) {
            (Some(n), _) => format!("loadgen_call_n % {n} = 0"),
            (None, Some(s)) => format!("random() < {s}"),
            (None, None) => "true".into(),
        }
    }

    fn how_often(&self) -> String {
        match (self.every, self.share) {
            (Some(1), _) | (None, None) => "every call".into(),
            (Some(n), _) => format!("every {n}th call"),
            (None, Some(s)) => format!("{:.0}% of the calls", s * 100.0),
        }
    }
}

#[async_trait]
impl Fault for Sqlstate {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        let (code, _) = self.code();
        match (&self.procedure, &self.table) {
            (Some(p), _) => format!("{p} answers {code}"),
            (None, Some(t)) => format!("{} on {t} answers {code}", self.statement.as_deref().unwrap_or("write")),
            (None, None) => "?".into(),
        }
    }

    fn check(&self, name: &str, _reach: &crate::faults::Reach) -> Result<(), String> {
        match self.code.as_deref() {
            None => return Err(format!("{name} needs a code (code = \"40001\")")),
            Some(c) if code_of(c).is_none() => {
                return Err(format!(
                    "{name}: unknown SQLSTATE {c:?} (known: {})",
                    CODES.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
                ));
            }
            Some(_) => {}
        }
        match (&self.procedure, &self.table) {
            (None, None) => return Err(format!("{name} needs a procedure or a table whose calls fail")),
            (Some(_), Some(_)) => return Err(format!("{name}: give a procedure or a table, not both")),
            (Some(p), None) if !PROCEDURES.contains(&p.as_str()) => {
                return Err(format!(
                    "{name}: {p:?} is not one of duroxide-pg's procedures ({})",
                    PROCEDURES.join(", ")
                ));
            }
            (None, Some(t)) if !TABLES.contains(&t.as_str()) => {
                return Err(format!("{name}: table {t:?} is not one of {}", TABLES.join(", ")));
            }
            _ => {}
        }
        match (&self.statement, &self.table) {
            (Some(_), None) => return Err(format!("{name}: statement goes with table")),
            (Some(s), Some(_)) if !STATEMENTS.contains(&s.as_str()) => {
                return Err(format!("{name}: statement {s:?} is not one of {}", STATEMENTS.join(", ")));
            }
            _ => {}
        }
        match (self.share, self.every) {
            (Some(_), Some(_)) => Err(format!("{name}: give share or every, not both")),
            (Some(s), None) if !(s > 0.0 && s <= 1.0) => Err(format!("{name}: share {s} must be > 0 and <= 1")),
            (None, Some(0)) => Err(format!("{name}: every must be at least 1")),
            _ => Ok(()),
        }
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let pool = cx.targets.database().ok_or("no Postgres to answer with errors")?.clone();
        let schema = cx.targets.schema().ok_or("no run schema to answer with errors")?.to_string();
        let name = format!("loadgen_sqlstate_{}", cx.id);
        let (code, condition) = self.code();
        let raise = format!(
            "PERFORM nextval('{schema}.{name}_hits'); RAISE EXCEPTION USING ERRCODE = '{code}', \
             MESSAGE = 'injected by the load generator''s sqlstate fault ({code} {condition})'"
        );
        let counters =
            [format!("CREATE SEQUENCE {schema}.{name}_calls"), format!("CREATE SEQUENCE {schema}.{name}_hits")];
        in_one_transaction(&pool, &counters).await.map_err(|e| missing_privilege("add its counters", &e))?;
        let mut held = Undo { pool: pool.clone(), schema: schema.clone(), name: name.clone(), restore: Vec::new() };
        let what = match (&self.procedure, &self.table) {
            (Some(p), _) => {
                held.restore = wrap_procedure(&pool, &schema, p, &name, &self.hit_condition(), &raise).await?;
                format!("call(s) of {p}")
            }
            (_, Some(t)) => {
                let stmt = self.statement.as_deref().unwrap_or("write");
                held.restore = add_trigger(&pool, &schema, t, stmt, &name, &self.hit_condition(), &raise).await?;
                format!("{stmt} statement(s) on {t}")
            }
            (None, None) => return Err("no procedure or table".into()),
        };
        tokio::time::sleep(cx.length).await;
        let (calls, hits) = held.now().await.map_err(|e| {
            Failure::NotUndone(format!("the sqlstate fault's changes to {schema} were not undone: {e}"))
        })?;
        Ok(format!(
            "{hits} of {calls} {what} answered {code} ({condition}; {}), over {}",
            self.how_often(),
            fmt_duration(cx.length)
        ))
    }
}

/// A failed change, with the privilege it needs named when that is why.
fn missing_privilege(what: &str, e: &sqlx::Error) -> Failure {
    let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.to_string());
    match code.as_deref() {
        Some("42501") => Failure::NotApplied(format!(
            "the sqlstate fault could not {what}: the database role must own the run schema's functions and tables (it does when it migrated them): {e}"
        )),
        _ => Failure::NotApplied(format!("the sqlstate fault could not {what}: {e}")),
    }
}

/// Wrap every overload of `schema.procedure` in place; the statements that
/// put the originals back.
async fn wrap_procedure(
    pool: &sqlx::PgPool,
    schema: &str,
    procedure: &str,
    name: &str,
    hit: &str,
    raise: &str,
) -> Result<Vec<String>, Failure> {
    let rows = sqlx::query(
        "SELECT pg_get_functiondef(p.oid) AS def, p.prosrc, l.lanname FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang \
         WHERE n.nspname = $1 AND p.proname = $2 AND p.prokind = 'f'",
    )
    .bind(schema)
    .bind(procedure)
    .fetch_all(pool)
    .await
    .map_err(|e| missing_privilege("read the procedure", &e))?;
    if rows.is_empty() {
        return Err(Failure::NotApplied(format!(
            "the run schema has no procedure {procedure} (the agents' build does not define it)"
        )));
    }
    let (mut wrap, mut restore) = (vec![format!("SET LOCAL lock_timeout = '{DDL_TIMEOUT}'")], Vec::new());
    for row in rows {
        let (def, src, lang): (String, String, String) = (row.get("def"), row.get("prosrc"), row.get("lanname"));
        let body = src.trim().trim_end_matches(';');
        if lang != "plpgsql" || body.starts_with('#') || !def.contains(&src) {
            return Err(Failure::NotApplied(format!(
                "{schema}.{procedure} is not a plain plpgsql body this fault can wrap ({lang})"
            )));
        }
        // The original body runs unchanged as a nested block.
        let wrapped = format!(
            "\nDECLARE loadgen_call_n bigint := nextval('{schema}.{name}_calls');\nBEGIN\nIF {hit} THEN {raise}; END IF;\n{body};\nEND\n"
        );
        wrap.push(def.replacen(&src, &wrapped, 1));
        restore.push(def);
    }
    in_one_transaction(pool, &wrap).await.map_err(|e| missing_privilege(&format!("wrap {procedure}"), &e))?;
    Ok(restore)
}

/// A statement trigger on `schema.table` that raises on hit writes; the
/// statements that remove it.
async fn add_trigger(
    pool: &sqlx::PgPool,
    schema: &str,
    table: &str,
    statement: &str,
    name: &str,
    hit: &str,
    raise: &str,
) -> Result<Vec<String>, Failure> {
    let events = match statement {
        "write" => "INSERT OR UPDATE OR DELETE".to_string(),
        s => s.to_uppercase(),
    };
    let add = [
        format!("SET LOCAL lock_timeout = '{DDL_TIMEOUT}'"),
        format!(
            "CREATE FUNCTION {schema}.{name}() RETURNS trigger LANGUAGE plpgsql AS $raise$ \
             DECLARE loadgen_call_n bigint := nextval('{schema}.{name}_calls'); \
             BEGIN IF {hit} THEN {raise}; END IF; RETURN NULL; END $raise$"
        ),
        format!(
            "CREATE TRIGGER {name} BEFORE {events} ON {schema}.{table} FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{name}()"
        ),
    ];
    in_one_transaction(pool, &add).await.map_err(|e| missing_privilege(&format!("add a trigger on {table}"), &e))?;
    Ok(vec![
        format!("DROP TRIGGER IF EXISTS {name} ON {schema}.{table}"),
        format!("DROP FUNCTION IF EXISTS {schema}.{name}()"),
    ])
}

async fn in_one_transaction(pool: &sqlx::PgPool, statements: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for s in statements {
        sqlx::query(s).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// What the fault changed, undone when it ends, or in the background when
/// it is dropped (an interrupted run); the schema's removal takes it all too.
struct Undo {
    pool: sqlx::PgPool,
    schema: String,
    name: String,
    /// The statements that put the procedures back (or drop the trigger).
    restore: Vec<String>,
}

impl Undo {
    fn statements(&self) -> Vec<String> {
        let (schema, name) = (&self.schema, &self.name);
        let mut all = vec![format!("SET LOCAL lock_timeout = '{DDL_TIMEOUT}'")];
        all.extend(self.restore.iter().cloned());
        all.push(format!("DROP SEQUENCE IF EXISTS {schema}.{name}_calls"));
        all.push(format!("DROP SEQUENCE IF EXISTS {schema}.{name}_hits"));
        all
    }

    /// Undo it; the calls seen and the calls hit.
    async fn now(&mut self) -> Result<(i64, i64), sqlx::Error> {
        let (schema, name) = (&self.schema, &self.name);
        let count =
            |seq: &str| format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {schema}.{name}_{seq}");
        // Put the procedures back first, then read the counters: no call
        // counts after the fault.
        let mut tx = self.pool.begin().await?;
        for s in self.statements().iter().filter(|s| !s.starts_with("DROP SEQUENCE")) {
            sqlx::query(s).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let calls: i64 = sqlx::query_scalar(&count("calls")).fetch_one(&self.pool).await?;
        let hits: i64 = sqlx::query_scalar(&count("hits")).fetch_one(&self.pool).await?;
        in_one_transaction(&self.pool, &self.statements()).await?;
        self.restore.clear();
        self.name.clear();
        Ok((calls, hits))
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let (pool, statements) = (self.pool.clone(), self.statements());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = in_one_transaction(&pool, &statements).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::code_of;
    use crate::faults::{Reach, Schedule, schedule};
    use std::time::Duration;

    fn read(extra: &str) -> Result<Schedule, String> {
        let reach = Reach { embedded_db: false, local_agents: None, duration: Duration::from_secs(30) };
        let text = format!("[[fault]]\nkind = \"sqlstate\"\nat = \"5s\"\nduration = \"10s\"\n{extra}");
        Schedule::resolve(&schedule::parse(&text, "f")?, &reach)
    }

    #[test]
    fn its_fields_are_checked() {
        let ok = read("code = \"40P01\"\nprocedure = \"ack_orchestration_item\"\nevery = 3").expect("a deadlock");
        assert_eq!(ok.faults[0].target(), "ack_orchestration_item answers 40P01");
        let ok = read("code = \"serialization_failure\"\ntable = \"history\"\nstatement = \"insert\"\nshare = 0.5")
            .expect("by condition name");
        assert_eq!(ok.faults[0].target(), "insert on history answers 40001");
        for (extra, said) in [
            ("procedure = \"ack_worker\"", "needs a code"),
            ("code = \"4000X\"\nprocedure = \"ack_worker\"", "unknown SQLSTATE \"4000X\""),
            ("code = \"00000\"\nprocedure = \"ack_worker\"", "unknown SQLSTATE"),
            ("code = \"40001\"", "needs a procedure or a table"),
            ("code = \"40001\"\nprocedure = \"drop_everything\"", "is not one of duroxide-pg's procedures"),
            ("code = \"40001\"\ntable = \"pg_class\"", "is not one of history"),
            ("code = \"40001\"\nprocedure = \"ack_worker\"\ntable = \"history\"", "not both"),
            ("code = \"40001\"\nprocedure = \"ack_worker\"\nstatement = \"insert\"", "statement goes with table"),
            ("code = \"40001\"\ntable = \"history\"\nstatement = \"select\"", "is not one of insert"),
            ("code = \"40001\"\nprocedure = \"ack_worker\"\nshare = 1.5", "share 1.5 must be > 0"),
            ("code = \"40001\"\nprocedure = \"ack_worker\"\nshare = 0.5\nevery = 2", "share or every, not both"),
            ("code = \"40001\"\nprocedure = \"ack_worker\"\nevery = 0", "every must be at least 1"),
            ("code = \"40001\"\nprocedure = \"ack_worker\"\nrows = 1", "unknown field `rows`"),
        ] {
            let e = read(extra).expect_err(extra);
            assert!(e.contains(said), "{extra}: {e}");
        }
    }

    #[test]
    fn codes_are_found_by_code_or_condition_name() {
        assert_eq!(code_of("40p01"), Some(("40P01", "deadlock_detected")));
        assert_eq!(code_of("admin_shutdown"), Some(("57P01", "admin_shutdown")));
        assert_eq!(code_of("successful_completion"), None);
        // Every code is five characters of a real class (not 00 to 02).
        for (code, _) in super::CODES {
            assert_eq!(code.len(), 5, "{code}");
            assert!(!["00", "01", "02"].contains(&&code[..2]), "{code}");
        }
    }
}
