//! `terminate-backends`: `pg_terminate_backend` on a share of the run's
//! database backends, the way an operator or a pooler ends sessions (the
//! provider sees SQLSTATE 57P01 on each).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Row;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "terminate-backends",
    about: "pg_terminate_backend on the run's database backends (a share, or all)",
    fields: &[("share", "the share of backends, 0 < share <= 1 (default all)")],
    lasting: Lasting::Instant,
    parse: |fields| Ok(Box::new(read_fields::<TerminateBackends>(fields)?)),
};

/// Bound on the terminating query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminateBackends {
    share: Option<f64>,
}

#[async_trait]
impl Fault for TerminateBackends {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        match self.share {
            Some(s) if s < 1.0 => format!("{:.0}% of the run's backends", s * 100.0),
            _ => "every backend of the run's database".into(),
        }
    }

    fn check(&self, name: &str, _reach: &crate::faults::Reach) -> Result<(), String> {
        match self.share {
            Some(s) if !(s > 0.0 && s <= 1.0) => Err(format!("{name}: share must be 0 < share <= 1")),
            _ => Ok(()),
        }
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let pool = cx.targets.database().ok_or("no Postgres to terminate backends of")?;
        // Other client backends of the run's database (not the one asking),
        // in pid order, in one statement on one connection so the
        // coordinator never terminates the connection it asks on.
        let kill = sqlx::query(
            "WITH b AS (SELECT pid, row_number() OVER (ORDER BY pid) AS n, count(*) OVER () AS total \
                        FROM pg_stat_activity WHERE datname = current_database() \
                        AND backend_type = 'client backend' AND pid <> pg_backend_pid()) \
             SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)), coalesce(max(total), 0) \
             FROM b WHERE n <= ceil(total * $1::float8)",
        )
        .bind(self.share.unwrap_or(1.0))
        .fetch_one(pool);
        let row = tokio::time::timeout(QUERY_TIMEOUT, kill)
            .await
            .map_err(|_| "terminating backends took too long".to_string())?
            .map_err(|e| e.to_string())?;
        let done: i64 = row.try_get(0).map_err(|e| e.to_string())?;
        let total: i64 = row.try_get(1).map_err(|e| e.to_string())?;
        Ok(format!("{done} of {total} backends terminated"))
    }
}
