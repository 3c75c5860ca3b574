//! `stall-writes`: for the fault's duration, every statement that writes
//! one of the run schema's tables waits `delay` first (a share of them with
//! `share`), through a statement-level trigger the fault adds and removes.
//! A stored procedure that writes the table stalls mid-call, after whatever
//! it checked before: on `history`, each orchestration acknowledgement
//! stalls after its lock-token check, so its lease can expire part way
//! through. (On duroxide-pg 0.1.37 that alone did not process a message
//! twice in our runs: the acknowledgement has updated the instance's row by
//! then. A clock running ahead did; see docs/findings.md.)

use std::time::Duration;

use async_trait::async_trait;
use loadgen_common::units::opt_duration_text;
use serde::Deserialize;

use super::in_one_transaction;
use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, Reach, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "stall-writes",
    about: "every write to one of the run schema's tables (history, orchestrator_queue, ...) waits `delay` first, for the duration",
    fields: &[
        (
            "table",
            "the run schema's table whose writers stall: history (mid-acknowledgement), orchestrator_queue, worker_queue, instance_locks, executions, instances (required)",
        ),
        ("delay", "how long each stalled statement waits, 1ms to 60s (required)"),
        ("share", "the share of the writing statements that stall, 0 < share <= 1 (default all)"),
        (
            "agent",
            "only agent i's writes stall (its runtimes' connections, by their application_name; default every agent's)",
        ),
    ],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<StallWrites>(fields)?)),
};

/// The tables of duroxide-pg's schema a stall may target.
const TABLES: [&str; 6] =
    ["history", "orchestrator_queue", "worker_queue", "instance_locks", "executions", "instances"];
/// The longest stall of one statement.
const LONGEST_DELAY: Duration = Duration::from_secs(60);
/// Bound on adding or removing the trigger (it waits for the table's writers).
const DDL_TIMEOUT: &str = "10s";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StallWrites {
    table: Option<String>,
    #[serde(default, with = "opt_duration_text")]
    delay: Option<Duration>,
    share: Option<f64>,
    agent: Option<u32>,
}

#[async_trait]
impl Fault for StallWrites {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        let by = self.agent.map_or(String::new(), |i| format!(" by agent {i}"));
        format!("writes to {}{by}", self.table.as_deref().unwrap_or("?"))
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        if let Some(i) = self.agent {
            crate::faults::check_agent_index(name, i, reach)?;
        }
        match self.table.as_deref() {
            None => return Err(format!("{name} needs the table whose writers stall (table = \"history\")")),
            Some(t) if !TABLES.contains(&t) => {
                return Err(format!("{name}: table {t:?} is not one of {}", TABLES.join(", ")));
            }
            Some(_) => {}
        }
        match self.delay {
            None => return Err(format!("{name} needs a delay (how long each write waits)")),
            Some(d) if d.is_zero() || d > LONGEST_DELAY => {
                return Err(format!("{name}: the delay must be between 1ms and {}", fmt_duration(LONGEST_DELAY)));
            }
            Some(_) => {}
        }
        match self.share {
            Some(s) if !(s > 0.0 && s <= 1.0) => Err(format!("{name}: share {s} must be > 0 and <= 1")),
            _ => Ok(()),
        }
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let pool = cx.targets.database().ok_or("no Postgres to stall writes on")?.clone();
        let schema = cx.targets.schema().ok_or("no run schema to stall writes on")?.to_string();
        let table = self.table.clone().unwrap_or_default();
        let delay = self.delay.unwrap_or_default();
        let share = self.share.unwrap_or(1.0);
        let name = format!("loadgen_stall_{}", cx.id);
        // One agent's statements: its connections carry its node in their
        // application_name (loadgen_common::schema::agent_connection_name).
        let whose = match self.agent {
            Some(i) => format!(
                " AND current_setting('application_name') ~ '{}'",
                loadgen_common::schema::agent_connection_regex(&schema, i)
            ),
            None => String::new(),
        };
        // The names are ours and the schema's (validated identifiers); the
        // figures are numbers: nothing here comes from outside unchecked.
        let add = [
            format!("SET LOCAL lock_timeout = '{DDL_TIMEOUT}'"),
            // Counts the stalls (a sequence counts rolled-back ones too).
            format!("CREATE SEQUENCE {schema}.{name}_n"),
            format!(
                "CREATE FUNCTION {schema}.{name}() RETURNS trigger LANGUAGE plpgsql AS $stall$ \
                 BEGIN IF random() < {share}{whose} THEN PERFORM nextval('{schema}.{name}_n'); PERFORM pg_sleep({secs}); END IF; \
                 RETURN NULL; END $stall$",
                secs = delay.as_secs_f64()
            ),
            format!(
                "CREATE TRIGGER {name} BEFORE INSERT OR UPDATE OR DELETE ON {schema}.{table} \
                 FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{name}()"
            ),
        ];
        in_one_transaction(&pool, &add).await.map_err(|e| format!("the stall was not added: {e}"))?;
        let mut held = Remove {
            pool: pool.clone(),
            schema: schema.clone(),
            name: name.clone(),
            table: table.clone(),
            armed: true,
        };
        tokio::time::sleep(cx.length).await;
        let stalled = held
            .now()
            .await
            .map_err(|e| Failure::NotUndone(format!("the stall's trigger {schema}.{name} was not removed: {e}")))?;
        let mut which = if share < 1.0 { format!(" ({:.0}% of them)", share * 100.0) } else { String::new() };
        if let Some(i) = self.agent {
            which.push_str(&format!(" by agent {i}"));
        }
        Ok(format!(
            "{stalled} statement(s) writing {table}{which} waited {} first, over {}",
            fmt_duration(delay),
            fmt_duration(cx.length)
        ))
    }
}

/// The trigger and its function, removed when the fault ends, or in the
/// background when the fault is dropped (an interrupted run); the schema's
/// removal at the run's end takes them too.
struct Remove {
    pool: sqlx::PgPool,
    schema: String,
    name: String,
    table: String,
    /// Still to be removed.
    armed: bool,
}

impl Remove {
    fn statements(&self) -> [String; 4] {
        let Remove { schema, name, table, .. } = self;
        let (schema, name, table) = (schema.as_str(), name.as_str(), table.as_str());
        [
            format!("SET LOCAL lock_timeout = '{DDL_TIMEOUT}'"),
            format!("DROP TRIGGER IF EXISTS {name} ON {schema}.{table}"),
            format!("DROP FUNCTION IF EXISTS {schema}.{name}()"),
            format!("DROP SEQUENCE IF EXISTS {schema}.{name}_n"),
        ]
    }

    /// Remove it; how many statements stalled.
    async fn now(&mut self) -> Result<i64, sqlx::Error> {
        let (schema, name) = (&self.schema, &self.name);
        let count = format!("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {schema}.{name}_n");
        let stalled: i64 = sqlx::query_scalar(&count).fetch_one(&self.pool).await?;
        in_one_transaction(&self.pool, &self.statements()).await?;
        self.armed = false;
        Ok(stalled)
    }
}

impl Drop for Remove {
    fn drop(&mut self) {
        if !self.armed {
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
    use crate::faults::{Reach, Schedule, schedule};
    use std::time::Duration;

    #[test]
    fn its_fields_are_checked() {
        let reach = Reach { embedded_db: false, local_agents: None, duration: Duration::from_secs(30), ha: false };
        let read = |extra: &str| {
            let text = format!("[[fault]]\nkind = \"stall-writes\"\nat = \"5s\"\nduration = \"10s\"\n{extra}");
            Schedule::resolve(&schedule::parse(&text, "f")?, &reach)
        };
        let ok = read("table = \"history\"\ndelay = \"6s\"\nshare = 0.3").expect("a stall of the acks");
        assert_eq!(ok.faults[0].target(), "writes to history");
        let ok = read("table = \"history\"\ndelay = \"6s\"\nagent = 1").expect("one agent's acks");
        assert_eq!(ok.faults[0].target(), "writes to history by agent 1");
        for (extra, said) in [
            ("delay = \"6s\"", "needs the table"),
            ("table = \"pg_class\"\ndelay = \"6s\"", "is not one of history"),
            ("table = \"history\"", "needs a delay"),
            ("table = \"history\"\ndelay = \"2m\"", "between 1ms and 60s"),
            ("table = \"history\"\ndelay = \"1s\"\nshare = 0", "share 0 must be > 0"),
        ] {
            let e = read(extra).expect_err(extra);
            assert!(e.contains(said), "{extra}: {e}");
        }
    }
}
