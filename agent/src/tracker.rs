//! Completion tracking where the batched Postgres query
//! ([`loadgen_common::tracker`]) does not apply: through duroxide's client
//! API, and on duroxide's SQLite store.

pub use loadgen_common::tracker::{Finished, Terminal, Tracker};

/// Completion tracking through duroxide's client API, for a provider build
/// whose tables this tool does not know: per tick one `get_instance_info`
/// per instance in flight, and one `get_execution_info` per terminal one
/// (its completion time). Costlier than the batched queries, which are the
/// way for the builds this tool knows.
pub async fn poll_client(client: &duroxide::Client, ids: &[String]) -> Result<Vec<Finished>, String> {
    let mut out = Vec::new();
    for id in ids {
        let info = match client.get_instance_info(id).await {
            Ok(info) => info,
            // Not yet created: the start is queued, its first turn not taken.
            Err(e) if e.to_string().contains("not found") => continue,
            Err(e) => return Err(e.to_string()),
        };
        let state = match info.status.as_str() {
            "Completed" => Terminal::Completed,
            "Failed" => Terminal::Failed { output: info.output.clone().unwrap_or_default() },
            _ => continue,
        };
        let completed_at = client
            .get_execution_info(id, info.current_execution_id)
            .await
            .map_err(|e| e.to_string())?
            .completed_at
            .and_then(|ms| chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?));
        out.push(Finished { instance_id: id.clone(), state, completed_at, fingerprint: None });
    }
    Ok(out)
}

/// Completion tracking on duroxide's SQLite store: the batched question of
/// [`Tracker`] on SQLite's tables, one query per tick for every instance in
/// flight (in chunks of 500 ids). The client API asks instance by instance,
/// two queries each (one counting the history); on an in-memory store
/// whose connections share one cache, every extra reader is another chance
/// of a table-lock conflict that sends a dispatcher into a 200 ms backoff.
/// duroxide 0.1.32's schema, pinned with the crate: `executions.completed_at`
/// holds milliseconds since the epoch.
pub async fn poll_sqlite(pool: &sqlx::SqlitePool, ids: &[String]) -> Result<Vec<Finished>, String> {
    use sqlx::Row;
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT e.instance_id, e.status, e.output, e.completed_at FROM executions e \
             JOIN instances i ON i.instance_id = e.instance_id AND i.current_execution_id = e.execution_id \
             WHERE e.status IN ('Completed', 'Failed') AND e.instance_id IN ({marks})"
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        let rows = q.fetch_all(pool).await.map_err(|e| e.to_string())?;
        for row in rows {
            let get = |c: &str| row.try_get::<Option<String>, _>(c).map_err(|e| e.to_string());
            let instance_id = get("instance_id")?.unwrap_or_default();
            let state = match get("status")?.as_deref() {
                Some("Completed") => Terminal::Completed,
                _ => Terminal::Failed { output: get("output")?.unwrap_or_default() },
            };
            let completed_at = row
                .try_get::<Option<i64>, _>("completed_at")
                .map_err(|e| e.to_string())?
                .and_then(chrono::DateTime::from_timestamp_millis);
            out.push(Finished { instance_id, state, completed_at, fingerprint: None });
        }
    }
    Ok(out)
}
