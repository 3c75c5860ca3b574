//! `cancel-queries`: for the fault's duration, cancel every statement
//! running on the run's database (`pg_cancel_backend`, every 20 ms), as a
//! storm of statement timeouts or an operator's cancels does. The provider
//! sees SQLSTATE 57014 on each cancelled call; its connections stay open.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use sqlx::Row;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "cancel-queries",
    about: "cancel every statement running on the run's database for the duration (SQLSTATE 57014)",
    fields: &[],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<CancelQueries>(fields)?)),
};

/// How often running statements are looked for: a provider call takes
/// milliseconds, so most are caught only by looking often.
const EVERY: Duration = Duration::from_millis(20);
/// Bound on one cancelling query (a paused server must not hold the fault).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelQueries {}

#[async_trait]
impl Fault for CancelQueries {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        "every running statement on the run's database".into()
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let pool = cx.targets.database().ok_or("no Postgres to cancel statements on")?;
        let until = Instant::now() + cx.length;
        let (mut cancelled, mut rounds, mut failed) = (0i64, 0u64, 0u64);
        let mut last_error = None;
        while Instant::now() < until {
            rounds += 1;
            let cancel = sqlx::query(
                "SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_type = 'client backend' \
                 AND state = 'active' AND pid <> pg_backend_pid()",
            )
            .fetch_one(pool);
            match tokio::time::timeout(QUERY_TIMEOUT, cancel).await {
                Ok(Ok(row)) => cancelled += row.try_get::<i64, _>(0).unwrap_or(0),
                Ok(Err(e)) => (failed, last_error) = (failed + 1, Some(e.to_string())),
                Err(_) => (failed, last_error) = (failed + 1, Some("a cancelling query took too long".into())),
            }
            tokio::time::sleep(EVERY.min(until.saturating_duration_since(Instant::now()))).await;
        }
        if failed == rounds {
            return Err(format!("no statement cancelled: {}", last_error.unwrap_or_default()).into());
        }
        Ok(format!("{cancelled} running statement(s) cancelled over {} ({rounds} sweeps)", fmt_duration(cx.length)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{Reach, Schedule, schedule};

    #[test]
    fn it_lasts_and_takes_no_fields() {
        let reach = Reach { embedded_db: false, local_agents: None, duration: Duration::from_secs(30), ha: false };
        let read = |text: &str| Schedule::resolve(&schedule::parse(text, "f")?, &reach);
        let ok = read("[[fault]]\nkind = \"cancel-queries\"\nat = \"5s\"\nduration = \"2s\"").expect("any database");
        assert_eq!(ok.faults[0].target(), "every running statement on the run's database");
        let e = read("[[fault]]\nkind = \"cancel-queries\"\nat = \"5s\"").expect_err("no duration");
        assert!(e.contains("needs a duration"), "{e}");
        let e =
            read("[[fault]]\nkind = \"cancel-queries\"\nat = \"5s\"\nduration = \"2s\"\nshare = 0.5").expect_err("");
        assert!(e.contains("unknown field `share`"), "{e}");
    }
}
