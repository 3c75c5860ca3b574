//! `coordinator cleanup`: find the schemas this tool leaves when it cannot
//! drop them itself (a coordinator killed with SIGKILL, `--keep-schema`,
//! a bench interrupted), say what each holds, and drop the chosen ones,
//! only when asked to (`--yes`). A schema whose instances changed within the
//! last minute may belong to a run still going: it is kept unless `--force`.

use std::time::Duration;

use loadgen_common::schema::{SCHEMA_PREFIX, validate_schema_name};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Row};

use super::audit::record::RunRecord;
use super::db_err;
use crate::error::{CoordinatorError, one_line};

/// A schema changed this recently is in use.
const ACTIVE_WITHIN: Duration = Duration::from_secs(60);

/// Which schemas to drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Only list.
    None,
    All,
    /// Older than this (by the run's record, or the schema's migration time).
    OlderThan(Duration),
    /// The schema of these runs.
    Runs(Vec<String>),
}

impl Selection {
    /// The selection the command line makes (`--all`, `--older-than`, `--run`).
    pub fn chosen(all: bool, older_than: Option<Duration>, runs: &[String]) -> Self {
        match (all, older_than) {
            (true, _) => Selection::All,
            (false, Some(d)) => Selection::OlderThan(d),
            (false, None) if !runs.is_empty() => Selection::Runs(runs.to_vec()),
            _ => Selection::None,
        }
    }
}

/// One schema the tool left behind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LeftSchema {
    pub schema: String,
    /// The run's record, when the schema has one.
    pub run_id: Option<String>,
    pub profile: Option<String>,
    pub scenario: Option<String>,
    /// When the run began (its record) or the schema was migrated.
    pub started_at: Option<String>,
    pub age_s: Option<f64>,
    pub instances: u64,
    pub bytes: u64,
    /// Instances changed within the last minute: a run is still going.
    pub active: bool,
    /// Dropped by this invocation.
    pub dropped: bool,
    /// Chosen by the selection (dropped only with --yes).
    pub selected: bool,
}

/// What `coordinator cleanup` found and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// The database looked in (empty with `--servers`).
    pub database: String,
    pub schemas: Vec<LeftSchema>,
    /// With `--servers`: the throwaway servers found on this machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<super::leftover::LeftServer>,
    /// True when the selection was dropped (`--yes`).
    pub applied: bool,
    pub problems: Vec<String>,
}

async fn connect(url: &str) -> Result<sqlx::PgConnection, CoordinatorError> {
    sqlx::PgConnection::connect(url).await.map_err(|e| super::connect_err(url, e))
}

/// Every `loadgen_*` schema with what it holds.
pub async fn list(url: &str) -> Result<Vec<LeftSchema>, CoordinatorError> {
    let mut conn = connect(url).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1) ORDER BY nspname")
            .bind(SCHEMA_PREFIX)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| db_err("listing schemas", e))?;
    let mut out = Vec::with_capacity(names.len());
    for s in names.into_iter().filter(|n| validate_schema_name(n).is_ok()) {
        let mut left = LeftSchema { schema: s.clone(), ..Default::default() };
        let has = |table: &str| format!("to_regclass('{s}.{table}') IS NOT NULL");
        let row = sqlx::query(&format!(
            "SELECT {}, {}, {}, \
                    (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)",
            has("instances"),
            has("loadgen_run"),
            has("_duroxide_migrations")
        ))
        .bind(&s)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| db_err("reading a schema", e))?;
        let (instances, record, migrations): (bool, bool, bool) =
            (row.try_get(0).unwrap_or(false), row.try_get(1).unwrap_or(false), row.try_get(2).unwrap_or(false));
        left.bytes = row.try_get::<i64, _>(3).map_or(0, |b| b.max(0) as u64);
        if instances {
            let r = sqlx::query(&format!(
                "SELECT count(*), coalesce(max(updated_at) > now() - make_interval(secs => $1), false) FROM {s}.instances"
            ))
            .bind(ACTIVE_WITHIN.as_secs_f64())
            .fetch_one(&mut conn)
            .await
            .map_err(|e| db_err("counting instances", e))?;
            left.instances = r.try_get::<i64, _>(0).map_or(0, |n| n.max(0) as u64);
            left.active = r.try_get(1).unwrap_or(false);
        }
        if record {
            let r: Option<(String, f64, String)> = sqlx::query_as(&format!(
                "SELECT record::text, extract(epoch FROM now() - recorded_at)::float8, recorded_at::text \
                 FROM {s}.loadgen_run ORDER BY recorded_at LIMIT 1"
            ))
            .fetch_optional(&mut conn)
            .await
            .unwrap_or(None);
            if let Some((text, age, at)) = r {
                if let Ok(rec) = serde_json::from_str::<RunRecord>(&text) {
                    left.run_id = Some(rec.run_id);
                    left.scenario = Some(rec.scenario);
                    left.profile = (!rec.profile.is_empty()).then_some(rec.profile);
                }
                left.age_s = Some(age);
                left.started_at = Some(at);
            }
        }
        if left.age_s.is_none() && migrations {
            let r: Option<(f64, String)> = sqlx::query_as(&format!(
                "SELECT extract(epoch FROM now() - min(applied_at))::float8, min(applied_at)::text FROM {s}._duroxide_migrations"
            ))
            .fetch_optional(&mut conn)
            .await
            .unwrap_or(None);
            if let Some((age, at)) = r {
                left.age_s = Some(age);
                left.started_at = Some(at);
            }
        }
        out.push(left);
    }
    let _ = conn.close().await;
    Ok(out)
}

/// Whether `selection` chooses `s`.
pub fn selects(selection: &Selection, s: &LeftSchema) -> bool {
    match selection {
        Selection::None => false,
        Selection::All => true,
        Selection::OlderThan(d) => s.age_s.is_some_and(|a| a >= d.as_secs_f64()),
        Selection::Runs(ids) => {
            ids.iter().any(|id| s.run_id.as_deref() == Some(id.as_str()) || s.schema == format!("{SCHEMA_PREFIX}{id}"))
        }
    }
}

/// The throwaway servers left on this machine (in the temp directory);
/// with `apply`, every one whose coordinator is gone stopped and removed.
pub fn servers(apply: bool) -> CleanupReport {
    let (servers, problems) = super::leftover::sweep(&std::env::temp_dir(), apply);
    CleanupReport { servers, applied: apply, problems, ..Default::default() }
}

/// List the schemas, mark the selected ones, and drop them when `apply`.
pub async fn cleanup(
    url: &str,
    selection: &Selection,
    apply: bool,
    force: bool,
) -> Result<CleanupReport, CoordinatorError> {
    let mut schemas = list(url).await?;
    let mut problems = Vec::new();
    let mut conn = if apply { Some(connect(url).await?) } else { None };
    for s in &mut schemas {
        s.selected = selects(selection, s);
        if !(s.selected && apply) {
            continue;
        }
        if s.active && !force {
            problems.push(format!(
                "{} is in use (instances changed within the last minute): not dropped (--force drops it anyway)",
                s.schema
            ));
            continue;
        }
        let Some(c) = conn.as_mut() else { continue };
        match sqlx::query(&format!("DROP SCHEMA {} CASCADE", s.schema)).execute(&mut *c).await {
            Ok(_) => s.dropped = true,
            Err(e) => problems.push(one_line(&format!("dropping {}: {e}", s.schema))),
        }
    }
    if let Selection::Runs(ids) = selection {
        for id in ids {
            if !schemas
                .iter()
                .any(|s| s.run_id.as_deref() == Some(id.as_str()) || s.schema == format!("{SCHEMA_PREFIX}{id}"))
            {
                problems.push(format!("no schema of run {id}"));
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
    Ok(CleanupReport {
        database: loadgen_common::secret::mask_url(url),
        schemas,
        applied: apply,
        problems,
        servers: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_choose_by_age_and_run() {
        let s = |schema: &str, run: Option<&str>, age: Option<f64>| LeftSchema {
            schema: schema.into(),
            run_id: run.map(str::to_string),
            age_s: age,
            ..Default::default()
        };
        let old = s("loadgen_aaaa", Some("aaaa"), Some(7200.0));
        let new = s("loadgen_bbbb", Some("bbbb"), Some(60.0));
        let unknown = s("loadgen_stress_cc", None, None);
        let hour = Selection::OlderThan(Duration::from_secs(3600));
        assert!(selects(&hour, &old) && !selects(&hour, &new) && !selects(&hour, &unknown));
        let runs = Selection::Runs(vec!["bbbb".into(), "stress_cc".into()]);
        assert!(!selects(&runs, &old) && selects(&runs, &new) && selects(&runs, &unknown));
        assert!(selects(&Selection::All, &unknown) && !selects(&Selection::None, &old));
    }
}
