//! What the `sqlstate` fault changes on the server: a procedure wrapped in
//! place or a table's statement trigger, and their undoing.

use sqlx::Row;

use super::super::in_one_transaction;
use crate::faults::Failure;

/// Bound on changing a procedure or a table (it waits for their users).
const DDL_TIMEOUT: &str = "10s";

/// A failed change, with the privilege it needs named when that is why.
pub(super) fn missing_privilege(what: &str, e: &sqlx::Error) -> Failure {
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
pub(super) async fn wrap_procedure(
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
pub(super) async fn add_trigger(
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

/// What the fault changed, undone when it ends, or in the background when
/// it is dropped (an interrupted run); the schema's removal takes it all too.
pub(super) struct Undo {
    pub(super) pool: sqlx::PgPool,
    pub(super) schema: String,
    pub(super) name: String,
    /// The statements that put the procedures back (or drop the trigger).
    pub(super) restore: Vec<String>,
}

impl Undo {
    /// The procedures put back (or the trigger dropped).
    fn put_back(&self) -> Vec<String> {
        let mut all = vec![format!("SET LOCAL lock_timeout = '{DDL_TIMEOUT}'")];
        all.extend(self.restore.iter().cloned());
        all
    }

    fn drop_counters(&self) -> [String; 2] {
        let (schema, name) = (&self.schema, &self.name);
        [
            format!("DROP SEQUENCE IF EXISTS {schema}.{name}_calls"),
            format!("DROP SEQUENCE IF EXISTS {schema}.{name}_hits"),
        ]
    }

    /// Undo it; the calls seen and the calls hit.
    pub(super) async fn now(&mut self) -> Result<(i64, i64), sqlx::Error> {
        let (schema, name) = (&self.schema, &self.name);
        let count =
            |seq: &str| format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {schema}.{name}_{seq}");
        // Put the procedures back first, then read the counters: no call
        // counts after the fault.
        in_one_transaction(&self.pool, &self.put_back()).await?;
        let calls: i64 = sqlx::query_scalar(&count("calls")).fetch_one(&self.pool).await?;
        let hits: i64 = sqlx::query_scalar(&count("hits")).fetch_one(&self.pool).await?;
        in_one_transaction(&self.pool, &self.drop_counters()).await?;
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
        let mut statements = self.put_back();
        statements.extend(self.drop_counters());
        let pool = self.pool.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = in_one_transaction(&pool, &statements).await;
            });
        }
    }
}
