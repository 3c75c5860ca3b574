//! The correctness audit: after every run (and on demand for a kept schema
//! with `coordinator audit --schema S`), the schema itself must show that every
//! launched instance exists and ended exactly once, nothing is left running
//! or queued, outputs are what the scenario returns, and the history holds
//! every activity completion; activity executions beyond that are counted as
//! redeliveries, not hidden.
//!
//! The coordinator records what a run expects in a small `loadgen_run` table
//! inside the run's schema, so an audit of a kept schema knows it too.

use duroxide_pg::PostgresProvider;
use loadgen_common::result::Audit;
use sqlx::Row;

use crate::db::db_err;
use crate::error::CoordinatorError;

/// What the audit should find.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectation {
    /// Only instances of this run (`<run>-...`); all instances when `None`.
    pub run_id: Option<String>,
    /// Output every completed instance must have.
    pub output: Option<String>,
    /// ActivityCompleted events each completed instance must have.
    pub activities_per_instance: Option<u64>,
    /// Instances the generator launched (0: unknown).
    pub launched: u64,
    /// Orchestrations the generator saw complete (None: unknown).
    pub completed: Option<u64>,
    /// Activity executions counted by the agents (0: unknown).
    pub activities_executed: u64,
}

/// Audit a kept schema on its own (`coordinator audit --schema S`), with what
/// its run recorded when it has a `loadgen_run` table.
pub async fn audit_schema(url: &str, schema: &str) -> Result<Audit, CoordinatorError> {
    use duroxide_pg::{MigrationPolicy, ProviderConfig};
    loadgen_common::schema::validate_schema_name(schema).map_err(|e| CoordinatorError::Usage(e.to_string()))?;
    crate::db::preflight(url).await?;
    let mut config = ProviderConfig::url(url);
    config.schema_name = Some(schema.to_string());
    // Verify only: an audit must never create or migrate anything.
    config.migration_policy = MigrationPolicy::VerifyOnly;
    let provider = PostgresProvider::new_with_config(config).await.map_err(|e| {
        CoordinatorError::Usage(crate::error::one_line(&format!(
            "schema {schema} is not a duroxide-pg schema in this database ({})",
            loadgen_common::secret::scrub(&format!("{e:#}"), url)
        )))
    })?;
    let expectation = recorded(&provider).await?.unwrap_or_default();
    let result = audit(&provider, &expectation).await;
    provider.pool().close().await;
    result
}

/// Record a run's expectation in its schema.
pub async fn record(provider: &PostgresProvider, e: &Expectation) -> Result<(), CoordinatorError> {
    let s = provider.schema_name();
    sqlx::query(&format!(
        "CREATE TABLE IF NOT EXISTS {s}.loadgen_run (run_id text PRIMARY KEY, expected_output text, \
         activities_per_instance bigint, launched bigint, completed bigint, activities_executed bigint, \
         recorded_at timestamptz NOT NULL DEFAULT now())"
    ))
    .execute(provider.pool())
    .await
    .map_err(|e| db_err("recording the run", e))?;
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(&format!(
        "INSERT INTO {s}.loadgen_run (run_id, expected_output, activities_per_instance, launched, completed, activities_executed) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id) DO UPDATE SET launched = $4, completed = $5, \
         activities_executed = $6, recorded_at = now()"
    ))
    .bind(e.run_id.clone().unwrap_or_default())
    .bind(e.output.clone())
    .bind(e.activities_per_instance.map(as_i64))
    .bind(as_i64(e.launched))
    .bind(e.completed.map(as_i64))
    .bind(as_i64(e.activities_executed))
    .execute(provider.pool())
    .await
    .map_err(|e| db_err("recording the run", e))?;
    Ok(())
}

/// Expectations recorded in a kept schema (none when it has no `loadgen_run`).
pub async fn recorded(provider: &PostgresProvider) -> Result<Option<Expectation>, CoordinatorError> {
    let s = provider.schema_name();
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{s}.loadgen_run"))
        .fetch_one(provider.pool())
        .await
        .map_err(|e| db_err("reading the run record", e))?;
    if !exists {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT run_id, expected_output, activities_per_instance, launched, completed, activities_executed \
         FROM {s}.loadgen_run ORDER BY recorded_at DESC LIMIT 1"
    ))
    .fetch_optional(provider.pool())
    .await
    .map_err(|e| db_err("reading the run record", e))?;
    Ok(row.map(|r| {
        let u = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        Expectation {
            run_id: r.try_get::<String, _>(0).ok().filter(|s| !s.is_empty()),
            output: r.try_get(1).ok().flatten(),
            activities_per_instance: u(r.try_get(2).ok().flatten()),
            launched: u(r.try_get(3).ok().flatten()).unwrap_or(0),
            completed: u(r.try_get(4).ok().flatten()),
            activities_executed: u(r.try_get(5).ok().flatten()).unwrap_or(0),
        }
    }))
}

/// Audit the schema against `e`.
pub async fn audit(provider: &PostgresProvider, e: &Expectation) -> Result<Audit, CoordinatorError> {
    let s = provider.schema_name();
    let pattern = e.run_id.as_ref().map_or("%".to_string(), |r| format!("{r}-%"));
    let row = sqlx::query(&format!(
        "SELECT count(*), \
                count(*) FILTER (WHERE n_exec = 1 AND status IN ('Completed', 'Failed')), \
                count(*) FILTER (WHERE status = 'Completed'), \
                count(*) FILTER (WHERE status = 'Failed'), \
                count(*) FILTER (WHERE status IS NULL OR status NOT IN ('Completed', 'Failed')), \
                count(*) FILTER (WHERE n_exec <> 1), \
                count(*) FILTER (WHERE status = 'Completed' AND $2::text IS NOT NULL AND output IS DISTINCT FROM $2::text) \
         FROM (SELECT i.instance_id, \
                      (SELECT count(*) FROM {s}.executions x WHERE x.instance_id = i.instance_id) AS n_exec, \
                      e.status, e.output \
               FROM {s}.instances i \
               LEFT JOIN {s}.executions e ON e.instance_id = i.instance_id AND e.execution_id = i.current_execution_id \
               WHERE i.instance_id LIKE $1) per_instance"
    ))
    .bind(&pattern)
    .bind(e.output.clone())
    .fetch_one(provider.pool())
    .await
    .map_err(|e| db_err("auditing the instances", e))?;
    let get = |r: &sqlx::postgres::PgRow, i: usize| r.try_get::<i64, _>(i).map(|v| v.max(0) as u64).unwrap_or(0);
    let queued_row = sqlx::query(&format!(
        "SELECT (SELECT count(*) FROM {s}.orchestrator_queue WHERE instance_id LIKE $1), \
                (SELECT count(*) FROM {s}.worker_queue WHERE instance_id LIKE $1 OR instance_id IS NULL)"
    ))
    .bind(&pattern)
    .fetch_one(provider.pool())
    .await
    .map_err(|e| db_err("auditing the queues", e))?;
    // Completions of activities of completed instances (what the fan-in joined).
    let completions: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {s}.history h \
         JOIN {s}.executions x ON x.instance_id = h.instance_id AND x.execution_id = h.execution_id AND x.status = 'Completed' \
         WHERE h.instance_id LIKE $1 AND h.event_data::jsonb->>'type' = 'ActivityCompleted'"
    ))
    .bind(&pattern)
    .fetch_one(provider.pool())
    .await
    .map_err(|e| db_err("auditing the history", e))?;
    let mut a = Audit {
        instances: get(&row, 0),
        launched: e.launched,
        terminal_once: get(&row, 1),
        completed: get(&row, 2),
        failed: get(&row, 3),
        not_terminal: get(&row, 4),
        anomalies: get(&row, 5),
        wrong_output: get(&row, 6),
        queued: get(&queued_row, 0) + get(&queued_row, 1),
        activity_completions: completions.max(0) as u64,
        expected_activity_completions: 0,
        activities_executed: e.activities_executed,
        redeliveries: 0,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    judge(&mut a, e);
    Ok(a)
}

/// Turn the counts into problems and notes.
pub fn judge(a: &mut Audit, e: &Expectation) {
    let mut problem = |cond: bool, text: String| {
        if cond {
            a.problems.push(text);
        }
    };
    problem(
        a.launched > a.instances,
        format!("{} launched instance(s) missing from the schema", a.launched.saturating_sub(a.instances)),
    );
    problem(a.not_terminal > 0, format!("{} instance(s) not terminal", a.not_terminal));
    problem(a.anomalies > 0, format!("{} instance(s) without exactly one execution", a.anomalies));
    problem(a.wrong_output > 0, format!("{} completed instance(s) with an unexpected output", a.wrong_output));
    problem(a.queued > 0, format!("{} message(s) left in the queues", a.queued));
    if let Some(seen) = e.completed {
        problem(seen != a.completed, format!("the schema shows {} completed, the agents saw {seen}", a.completed));
    }
    if let Some(per) = e.activities_per_instance {
        a.expected_activity_completions = a.completed * per;
        problem(
            a.activity_completions != a.expected_activity_completions,
            format!(
                "the history holds {} activity completion(s) for completed instances, expected {}",
                a.activity_completions, a.expected_activity_completions
            ),
        );
    }
    if a.activities_executed > 0 {
        problem(
            a.activities_executed < a.activity_completions,
            format!(
                "activities executed ({}) are fewer than the history's completions ({})",
                a.activities_executed, a.activity_completions
            ),
        );
        a.redeliveries = a.activities_executed.saturating_sub(a.activity_completions);
    }
    if a.launched > 0 && a.instances > a.launched {
        a.notes.push(format!(
            "{} instance(s) more than launched (a start call that failed after enqueueing)",
            a.instances - a.launched
        ));
    }
    if a.redeliveries > 0 {
        a.notes
            .push(format!("{} activity execution(s) beyond the history's completions (redeliveries)", a.redeliveries));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> (Audit, Expectation) {
        let a = Audit {
            instances: 10,
            launched: 10,
            terminal_once: 10,
            completed: 10,
            activity_completions: 30,
            activities_executed: 32,
            ..Default::default()
        };
        let e = Expectation {
            run_id: Some("r".into()),
            output: Some("fanout:3".into()),
            activities_per_instance: Some(3),
            launched: 10,
            completed: Some(10),
            activities_executed: 32,
        };
        (a, e)
    }

    #[test]
    fn a_clean_run_passes_and_counts_redeliveries() {
        let (mut a, e) = clean();
        judge(&mut a, &e);
        assert!(a.passed(), "{:?}", a.problems);
        assert_eq!((a.expected_activity_completions, a.redeliveries), (30, 2));
        assert_eq!(a.notes.len(), 1);
    }

    #[test]
    fn each_problem_is_named() {
        type Break = fn(&mut Audit);
        let cases: Vec<(Break, &str)> = vec![
            (|a| a.instances = 9, "missing"),
            (|a| a.not_terminal = 1, "not terminal"),
            (|a| a.anomalies = 1, "exactly one execution"),
            (|a| a.wrong_output = 2, "unexpected output"),
            (|a| a.queued = 3, "left in the queues"),
            (|a| a.completed = 9, "the agents saw 10"),
            (|a| a.activity_completions = 29, "expected 30"),
            (|a| a.activities_executed = 20, "fewer than the history"),
        ];
        for (break_it, needle) in cases {
            let (mut a, e) = clean();
            break_it(&mut a);
            judge(&mut a, &e);
            assert!(a.problems.iter().any(|p| p.contains(needle)), "{needle}: {:?}", a.problems);
        }
    }
}
