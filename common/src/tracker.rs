//! Completion tracking with one batched query per tick (the agents' own
//! tracking and the coordinator's cluster tracking share it).
//!
//! `wait_for_orchestration` polls each instance with two queries (one reading
//! the whole history) every <=100 ms: with hundreds in flight the generator
//! would become a large share of the load it measures. Instead the driver asks
//! once per tick which of its in-flight instances have a terminal current
//! execution. The query reads duroxide-pg's internal tables, which is why the
//! crate version is pinned exactly and an end-to-end test exercises it.
//!
//! An execution that ended without an `instances` row counts as ended too
//! (duroxide makes one when a first turn's ack fails permanently): the run
//! then counts the failure at once instead of waiting out the drain, and the
//! audit names the missing row.

use std::time::Duration;

use sqlx::Row;

/// One instance found terminal by a completion query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub instance_id: String,
    pub state: Terminal,
    /// When the runtime recorded the terminal status (its own clock, ms precision).
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the final read compares it with (the Postgres query reads it).
    pub fingerprint: Option<Fingerprint>,
}

/// What an instance looked like when it was seen ending: the md5 of its
/// output and its execution's history length. The end of the run reads
/// both again: work acknowledged and then lost shows as a different output
/// or a shorter history even where the status came back the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub output_md5: Option<String>,
    pub events: i64,
}

/// Terminal state of an instance as the tracker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    Completed,
    /// Failed; the stored output is the runtime's display message of the error.
    Failed {
        output: String,
    },
}

/// Bound on one completion query, so a stalled database cannot stall the driver.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Cluster tracking: how often each agent sends the ids it started, in a
/// cluster of `agents`. 20 ms up to 100 agents, then 20 ms per 100 agents (at
/// most 250 ms), so the coordinator receives about the same number of start
/// reports a second whatever the agent count (about 5,000 from agents that
/// start work all the time). An instance is seen up to this much later; its
/// end-to-end latency (from the runtime's own completion time) is not
/// affected, only when the generator learns of it.
pub fn start_report_interval(agents: u32) -> Duration {
    let hundreds = u64::from(agents).div_ceil(100).max(1);
    Duration::from_millis((20 * hundreds).min(250))
}

/// Builds and runs the batched completion query for one schema.
#[derive(Debug, Clone)]
pub struct Tracker {
    sql: String,
    /// The query also reads each instance's [`Fingerprint`].
    fingerprints: bool,
}

impl Tracker {
    /// A tracker for `schema` (already validated as an identifier).
    pub fn new(schema: &str) -> Self {
        Self::build(schema, false)
    }

    /// A tracker that also reads each ended instance's [`Fingerprint`] (what
    /// the coordinator's check of lost acknowledged work compares); an
    /// agent's own tracking has no use for it and does not pay for it.
    pub fn fingerprinting(schema: &str) -> Self {
        Self::build(schema, true)
    }

    fn build(schema: &str, fingerprints: bool) -> Self {
        let mark = crate::schema::GENERATOR_SQL_MARK;
        let extra = if fingerprints {
            format!(
                ", md5(e.output) AS output_md5, (SELECT count(*) FROM {schema}.history h \
                 WHERE h.instance_id = e.instance_id AND h.execution_id = e.execution_id) AS events"
            )
        } else {
            String::new()
        };
        let sql = format!(
            "{mark} SELECT e.instance_id, e.status, CASE WHEN e.status = 'Failed' THEN e.output END AS output, e.completed_at{extra} \
             FROM {schema}.executions e \
             LEFT JOIN {schema}.instances i ON i.instance_id = e.instance_id \
             WHERE e.instance_id = ANY($1) AND e.status IN ('Completed', 'Failed') \
               AND (i.instance_id IS NULL OR i.current_execution_id = e.execution_id)"
        );
        Tracker { sql, fingerprints }
    }

    /// Which of `ids` are terminal now. Instances not returned are still running
    /// (or not yet visible).
    pub async fn poll(&self, pool: &sqlx::PgPool, ids: &[String]) -> Result<Vec<Finished>, String> {
        let query = sqlx::query(&self.sql).bind(ids).fetch_all(pool);
        let rows = match tokio::time::timeout(QUERY_TIMEOUT, query).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("completion query took longer than {QUERY_TIMEOUT:?}")),
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0).map_err(|e| e.to_string())?;
            let status: String = row.try_get(1).map_err(|e| e.to_string())?;
            let output: Option<String> = row.try_get(2).map_err(|e| e.to_string())?;
            let completed_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get(3).map_err(|e| e.to_string())?;
            let state = if status == "Completed" {
                Terminal::Completed
            } else {
                Terminal::Failed { output: output.unwrap_or_default() }
            };
            let fingerprint = if self.fingerprints {
                let output_md5: Option<String> = row.try_get(4).map_err(|e| e.to_string())?;
                let events: i64 = row.try_get(5).map_err(|e| e.to_string())?;
                Some(Fingerprint { output_md5, events })
            } else {
                None
            };
            out.push(Finished { instance_id: id, state, completed_at, fingerprint });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_reports_slow_down_as_the_cluster_grows() {
        let ms = |n| start_report_interval(n).as_millis();
        assert_eq!((ms(1), ms(100), ms(101), ms(1000), ms(10_000)), (20, 20, 40, 200, 250));
    }

    #[test]
    fn query_is_scoped_to_the_schema() {
        let t = Tracker::new("loadgen_ab12");
        assert!(t.sql.contains("FROM loadgen_ab12.executions"));
        assert!(t.sql.contains("JOIN loadgen_ab12.instances"));
        assert!(!t.sql.contains("history"), "an agent's own tracking reads no fingerprint");
        assert!(Tracker::fingerprinting("loadgen_ab12").sql.contains("FROM loadgen_ab12.history h"));
    }
}
