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
//! With `connect = true` the agents' relays answer new database connections
//! instead (the client's startup message gets a FATAL ErrorResponse of the
//! code, as from a server that cannot take it), and the run's idle
//! connections are ended when the fault starts, so the pools must open new
//! ones (calls in progress are left alone).
//!
//! What it needs on a user's database: to own the run schema's functions and
//! tables, as the role that migrated them does.

use async_trait::async_trait;
use serde::Deserialize;

mod codes;
mod server;

use super::in_one_transaction;
use codes::PROCEDURES;
pub use codes::{CODES, code_of, hits_of};
use server::{Undo, add_trigger, missing_privilege, wrap_procedure};

use crate::faults::{AgentAction, Apply, Failure, Fault, FaultDef, Lasting, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "sqlstate",
    about: "the server answers a share (or every n-th) of the calls of one provider procedure, or of the writes to one table, with a genuine error of one SQLSTATE, for the duration (connect = true: new connections, answered by the agents' relays)",
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
        (
            "connect",
            "true: new database connections fail instead (answered by the agents' relays; the run's idle connections are ended as the fault starts, so the pools reconnect)",
        ),
        ("share", "the share of the calls that fail, 0 < share <= 1 (this or every; default every call)"),
        ("every", "every n-th call fails, n >= 1 (this or share)"),
    ],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<Sqlstate>(fields)?)),
};

/// The tables whose writers may fail.
const TABLES: [&str; 6] =
    ["history", "orchestrator_queue", "worker_queue", "instance_locks", "executions", "instances"];
const STATEMENTS: [&str; 4] = ["insert", "update", "delete", "write"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sqlstate {
    code: Option<String>,
    procedure: Option<String>,
    table: Option<String>,
    statement: Option<String>,
    #[serde(default)]
    connect: bool,
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
            (None, None) if self.connect => format!("connect answers {code}"),
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
        let targets =
            usize::from(self.procedure.is_some()) + usize::from(self.table.is_some()) + usize::from(self.connect);
        if targets > 1 {
            return Err(format!("{name}: give one of procedure, table and connect"));
        }
        match (&self.procedure, &self.table) {
            (None, None) if !self.connect => {
                return Err(format!("{name} needs a procedure or a table whose calls fail (or connect = true)"));
            }
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

    fn needs_relay(&self) -> bool {
        self.connect
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        if self.connect {
            return self.refuse_connections(cx).await;
        }
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

impl Sqlstate {
    /// `connect = true`: every agent's relay refuses new connections; the
    /// run's idle connections end so the pools must open new ones.
    async fn refuse_connections(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let (code, condition) = self.code();
        let agents = cx.targets.agent_count();
        let mut told = Vec::new();
        for i in 0..agents {
            let action = AgentAction::RefuseConnect {
                code: code.to_string(),
                every: self.every.unwrap_or(1),
                share: self.share,
                duration: cx.length,
                id: cx.id,
            };
            if cx.targets.tell_agent(i, action) {
                told.push(i);
            }
        }
        if told.is_empty() {
            return Err("no agent took the fault (its stream is closed)".into());
        }
        let ended = match cx.targets.database() {
            Some(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_type = 'client backend' \
                 AND state = 'idle' AND pid <> pg_backend_pid()",
            )
            .fetch_one(pool)
            .await
            .unwrap_or(0),
            None => 0,
        };
        let (mut refused, mut attempts, mut problems) = (0u64, 0u64, Vec::new());
        for i in told {
            let answer = tokio::time::timeout(cx.length + ANSWER_GRACE, cx.targets.agent_report(i, cx.id)).await;
            match answer {
                Ok(Some(Ok(detail))) => {
                    let (r, a) = hits_of(&detail);
                    refused += r.unwrap_or(0);
                    attempts += a.unwrap_or(0);
                }
                Ok(Some(Err(e))) => problems.push(format!("agent {i}: {e}")),
                Ok(None) => problems.push(format!("agent {i} ended before it answered")),
                Err(_) => problems.push(format!("agent {i} did not answer")),
            }
        }
        if !problems.is_empty() && refused == 0 {
            return Err(Failure::NotApplied(problems.join("; ")));
        }
        Ok(format!(
            "{refused} of {attempts} connection(s) refused with {code} ({condition}; {}), over {}; {ended} idle connection(s) ended at the start{}",
            self.how_often().replace("call", "attempt"),
            fmt_duration(cx.length),
            if problems.is_empty() { String::new() } else { format!(" ({})", problems.join("; ")) }
        ))
    }
}

/// How long past its duration an agent may take to say what it refused.
const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::code_of;
    use crate::faults::{Reach, Schedule, schedule};
    use std::time::Duration;

    fn read(extra: &str) -> Result<Schedule, String> {
        let reach = Reach { embedded_db: false, local_agents: None, duration: Duration::from_secs(30), ha: false };
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
        let ok = read("code = \"53300\"\nconnect = true").expect("at connect");
        assert_eq!(ok.faults[0].target(), "connect answers 53300");
        assert!(ok.needs_relay());
        for (extra, said) in [
            ("procedure = \"ack_worker\"", "needs a code"),
            ("code = \"4000X\"\nprocedure = \"ack_worker\"", "unknown SQLSTATE \"4000X\""),
            ("code = \"00000\"\nprocedure = \"ack_worker\"", "unknown SQLSTATE"),
            ("code = \"40001\"", "needs a procedure or a table"),
            ("code = \"40001\"\nprocedure = \"ack_worker\"\nconnect = true", "one of procedure, table and connect"),
            ("code = \"40001\"\nprocedure = \"drop_everything\"", "is not one of duroxide-pg's procedures"),
            ("code = \"40001\"\ntable = \"pg_class\"", "is not one of history"),
            (
                "code = \"40001\"\nprocedure = \"ack_worker\"\ntable = \"history\"",
                "one of procedure, table and connect",
            ),
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
