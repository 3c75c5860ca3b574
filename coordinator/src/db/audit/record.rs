//! What a run records in its own schema (`loadgen_run`), so an audit of a
//! kept schema later (`coordinator audit --schema S`) knows what the run
//! expected: the workload, its seed, the agents and their facts.

use std::collections::BTreeMap;

use crate::db::RunDb;
use serde::{Deserialize, Serialize};

use crate::db::db_err;
use crate::error::CoordinatorError;

/// A run's record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// The profile it ran (for `coordinator cleanup`'s listing).
    #[serde(default)]
    pub profile: String,
    pub scenario: String,
    /// The options as given (the scenario fills in its defaults).
    pub options: BTreeMap<String, String>,
    pub seed: u64,
    pub agents: u32,
    /// What the generator counted (0 / None: unknown yet).
    pub launched: u64,
    pub completed: Option<u64>,
    pub activities_executed: u64,
    /// Scenario facts per agent.
    pub facts: BTreeMap<u32, BTreeMap<String, u64>>,
}

/// Record (or update) a run's record in its schema.
pub async fn record(provider: &RunDb, r: &RunRecord) -> Result<(), CoordinatorError> {
    let s = provider.schema_name();
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {s}.loadgen_run (run_id text PRIMARY KEY, record jsonb NOT NULL, \
         recorded_at timestamptz NOT NULL DEFAULT now())"
    ))
    .execute(provider.pool())
    .await
    .map_err(|e| db_err("recording the run", e))?;
    let json = serde_json::to_string(r).map_err(|e| db_err("recording the run", e))?;
    sqlx::query(&format!(
        "INSERT INTO {s}.loadgen_run (run_id, record) VALUES ($1, $2::jsonb) \
         ON CONFLICT (run_id) DO UPDATE SET record = $2::jsonb, recorded_at = now()"
    ))
    .bind(&r.run_id)
    .bind(json)
    .execute(provider.pool())
    .await
    .map_err(|e| db_err("recording the run", e))?;
    Ok(())
}

/// The record of a kept schema (none when it has no readable `loadgen_run`).
pub async fn recorded(provider: &RunDb) -> Result<Option<RunRecord>, CoordinatorError> {
    let s = provider.schema_name();
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{s}.loadgen_run"))
        .fetch_one(provider.pool())
        .await
        .map_err(|e| db_err("reading the run record", e))?;
    if !exists {
        return Ok(None);
    }
    // An older tool's table has other columns: read it as no record.
    let row: Option<String> =
        sqlx::query_scalar(&format!("SELECT record::text FROM {s}.loadgen_run ORDER BY recorded_at DESC LIMIT 1"))
            .fetch_optional(provider.pool())
            .await
            .unwrap_or(None);
    Ok(row.and_then(|text| serde_json::from_str(&text).ok()))
}
