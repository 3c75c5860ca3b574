//! A matrix's rows and the verdicts it expects: a `sqlstate` fault per code
//! and procedure, a row per timing fault, each at the same moment of its
//! run and for the same time; and `--expect FILE`, the known verdicts.
//!
//! ```toml
//! # every build
//! "57P01 on ack_orchestration_item" = "fails work"
//! "restart-db" = "loses work"
//! # one build's own (over the above)
//! ["0.1.37"]
//! "40P01 on ack_orchestration_item" = "fails work"
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::faults::kinds::sqlstate;
use crate::faults::{FaultSpec, Reach, Schedule};
use crate::model::matrix::Verdict;

use super::Row;

/// The error classes a matrix answers with by default: the ones production
/// Postgres sends a provider (serialization, deadlock, a plan invalidated,
/// shutdown and startup, too many connections, a lock not available, a
/// statement timeout, read-only after a failover, a connection failure).
pub const DEFAULT_CODES: &str = "40001,40P01,0A000,57P01,57P03,53300,55P03,57014,25006,08006";
/// The timing faults a matrix runs by default (those that hold the server
/// only on the throwaway Postgres).
pub const DEFAULT_TIMING: &str = "terminate-backends,cancel-queries,stall-writes,pause-db,restart-db";
/// The timing faults a matrix knows how to set up.
const TIMING: [&str; 5] = ["terminate-backends", "cancel-queries", "stall-writes", "pause-db", "restart-db"];

/// What the rows are made of.
#[derive(Clone, Debug)]
pub struct RowsSpec {
    /// SQLSTATEs (or condition names); empty: no sqlstate rows.
    pub codes: Vec<String>,
    pub procedures: Vec<String>,
    /// A sqlstate fault hits every n-th call.
    pub every: u64,
    /// Timing faults; `None`: the defaults this run can reach.
    pub timing: Option<Vec<String>>,
    pub at: Duration,
    pub length: Duration,
}

/// The rows, each checked against the run it will break.
pub fn rows(spec: &RowsSpec, reach: &Reach) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for code in spec.codes.iter().filter(|c| c.as_str() != "none") {
        let Some((code, condition)) = sqlstate::code_of(code) else {
            let known: Vec<&str> = sqlstate::CODES.iter().map(|(c, _)| *c).collect();
            return Err(format!("--codes: unknown SQLSTATE {code:?} (known: {})", known.join(", ")));
        };
        for p in &spec.procedures {
            let mut fields = toml::Table::new();
            fields.insert("code".into(), code.into());
            // "connect": new connections fail, not a procedure's calls.
            let what = if p == "connect" {
                fields.insert("connect".into(), true.into());
                "the new connections"
            } else {
                fields.insert("procedure".into(), p.as_str().into());
                "the calls"
            };
            fields.insert("every".into(), toml::Value::Integer(spec.every.min(i64::MAX as u64) as i64));
            let every = if spec.every == 1 { "every one".to_string() } else { format!("every {}th", spec.every) };
            let about = format!("{condition}, {every} of {what} of {p}");
            rows.push(row(format!("{code} on {p}"), about, "sqlstate", fields, spec, reach)?);
        }
    }
    let timing: Vec<String> = match &spec.timing {
        Some(t) => t.iter().filter(|k| k.as_str() != "none").cloned().collect(),
        // The server-holding faults only where this coordinator holds it.
        None => DEFAULT_TIMING
            .split(',')
            .filter(|k| reach.embedded_db || !["pause-db", "restart-db"].contains(k))
            .map(str::to_string)
            .collect(),
    };
    for kind in &timing {
        let mut fields = toml::Table::new();
        let about = match kind.as_str() {
            "terminate-backends" => "every backend of the run's database terminated (57P01), once".to_string(),
            "cancel-queries" => "every running statement cancelled (57014), for the fault's time".into(),
            "stall-writes" => {
                fields.insert("table".into(), "history".into());
                fields.insert("delay".into(), "2s".into());
                "every write to history (mid-acknowledgement) waits 2 s, for the fault's time".into()
            }
            "pause-db" => "the throwaway Postgres paused (SIGSTOP), for the fault's time".into(),
            "restart-db" => "the throwaway Postgres crashed and restarted, down for the fault's time".into(),
            other => {
                return Err(format!(
                    "--timing: {other:?} is not a timing fault the matrix runs ({})",
                    TIMING.join(", ")
                ));
            }
        };
        rows.push(row(kind.clone(), about, kind, fields, spec, reach)?);
    }
    if rows.is_empty() {
        return Err("the matrix has no rows: give --codes or --timing (not both none)".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(r) = rows.iter().find(|r| !seen.insert(r.fault.clone())) {
        return Err(format!("the matrix names {} twice", r.fault));
    }
    Ok(rows)
}

fn row(
    fault: String,
    about: String,
    kind: &str,
    fields: toml::Table,
    spec: &RowsSpec,
    reach: &Reach,
) -> Result<Row, String> {
    let instant = kind == "terminate-backends";
    let f = FaultSpec {
        kind: kind.to_string(),
        at: spec.at,
        duration: if instant { None } else { Some(spec.length) },
        fields,
    };
    let schedule = Schedule::resolve(std::slice::from_ref(&f), reach).map_err(|e| format!("{fault}: {e}"))?;
    Ok(Row { fault, about, spec: f, schedule })
}

/// The verdicts `--expect` names: for every build, and per build.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    all: BTreeMap<String, Verdict>,
    by_build: BTreeMap<String, BTreeMap<String, Verdict>>,
}

impl Expect {
    /// The verdict expected of `fault` on `build` (tolerated unless named).
    pub fn verdict(&self, build: &str, fault: &str) -> Verdict {
        self.by_build
            .get(build)
            .and_then(|b| b.get(fault))
            .or_else(|| self.all.get(fault))
            .copied()
            .unwrap_or(Verdict::Tolerated)
    }

    /// Read `text` (the file `file`), checked against the rows and builds.
    pub fn parse(text: &str, file: &str, rows: &[Row], builds: &[String]) -> Result<Expect, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("{file}: {}", e.message().trim_end()))?;
        let faults: Vec<&str> = rows.iter().map(|r| r.fault.as_str()).collect();
        let mut e = Expect::default();
        for (key, value) in table {
            match value {
                toml::Value::String(v) => {
                    e.all.insert(checked_fault(file, &key, &faults)?, checked_verdict(file, &key, &v)?);
                }
                toml::Value::Table(t) => {
                    if !builds.contains(&key) {
                        return Err(format!("{file}: [{key:?}] is not a build of this matrix ({})", builds.join(", ")));
                    }
                    let mut own = BTreeMap::new();
                    for (fault, v) in t {
                        let toml::Value::String(v) = v else {
                            return Err(format!("{file}: {fault:?} under [{key:?}] must be a verdict in quotes"));
                        };
                        own.insert(checked_fault(file, &fault, &faults)?, checked_verdict(file, &fault, &v)?);
                    }
                    e.by_build.insert(key, own);
                }
                _ => return Err(format!("{file}: {key:?} must be a verdict in quotes or a build's table")),
            }
        }
        Ok(e)
    }
}

fn checked_fault(file: &str, fault: &str, faults: &[&str]) -> Result<String, String> {
    if faults.contains(&fault) {
        Ok(fault.to_string())
    } else {
        Err(format!("{file}: {fault:?} is not a row of this matrix (rows: {})", faults.join(", ")))
    }
}

fn checked_verdict(file: &str, fault: &str, v: &str) -> Result<Verdict, String> {
    Verdict::parse(v).ok_or_else(|| {
        let all: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        format!("{file}: {fault:?} = {v:?} is not a verdict ({})", all.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(codes: &str, timing: Option<&str>) -> RowsSpec {
        RowsSpec {
            codes: codes.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect(),
            procedures: vec!["ack_orchestration_item".into()],
            every: 5,
            timing: timing.map(|t| t.split(',').map(str::to_string).collect()),
            at: Duration::from_secs(3),
            length: Duration::from_secs(4),
        }
    }

    fn reach(embedded_db: bool) -> Reach {
        Reach { embedded_db, local_agents: Some(1), duration: Duration::from_secs(12), ha: false }
    }

    #[test]
    fn rows_are_a_code_per_procedure_then_the_timing_faults() {
        let r = rows(&spec("40P01,admin_shutdown", None), &reach(true)).expect("rows");
        let names: Vec<&str> = r.iter().map(|r| r.fault.as_str()).collect();
        assert_eq!(
            names,
            [
                "40P01 on ack_orchestration_item",
                "57P01 on ack_orchestration_item",
                "terminate-backends",
                "cancel-queries",
                "stall-writes",
                "pause-db",
                "restart-db"
            ]
        );
        assert_eq!(r[1].about, "admin_shutdown, every 5th of the calls of ack_orchestration_item");
        // On a user's database the server-holding faults are left out by default...
        let r = rows(&spec("none", None), &reach(false)).expect("rows");
        assert_eq!(r.len(), 3);
        // ... and refused when asked for.
        let e = rows(&spec("none", Some("pause-db")), &reach(false)).expect_err("pause on a URL");
        assert!(e.contains("pause-db"), "{e}");
    }

    #[test]
    fn bad_rows_are_refused() {
        for (codes, timing, said) in [
            ("4000X", Some("none"), "unknown SQLSTATE \"4000X\""),
            ("none", Some("none"), "no rows"),
            ("none", Some("kill-agent"), "not a timing fault the matrix runs"),
            ("40001,serialization_failure", Some("none"), "names 40001 on ack_orchestration_item twice"),
        ] {
            let e = rows(&spec(codes, timing.map(str::to_string).as_deref()), &reach(true)).expect_err(codes);
            assert!(e.contains(said), "{codes}: {e}");
        }
        let mut s = spec("40001", Some("none"));
        s.procedures = vec!["drop_table".into()];
        assert!(rows(&s, &reach(true)).expect_err("procedure").contains("not one of duroxide-pg's procedures"));
    }

    #[test]
    fn expectations_are_read_and_checked() {
        let r = rows(&spec("57P01,40P01", Some("restart-db")), &reach(true)).expect("rows");
        let builds = vec!["0.1.37".to_string(), "0.1.38".to_string()];
        let text =
            "\"57P01 on ack_orchestration_item\" = \"fails work\"\n[\"0.1.37\"]\n\"restart-db\" = \"loses work\"\n";
        let e = Expect::parse(text, "x.toml", &r, &builds).expect("expect");
        assert_eq!(e.verdict("0.1.38", "57P01 on ack_orchestration_item"), Verdict::FailsWork);
        assert_eq!(e.verdict("0.1.37", "restart-db"), Verdict::LosesWork);
        assert_eq!(e.verdict("0.1.38", "restart-db"), Verdict::Tolerated);
        for (text, said) in [
            ("\"57P02 on ack_orchestration_item\" = \"fails work\"", "is not a row of this matrix"),
            ("\"restart-db\" = \"breaks\"", "is not a verdict"),
            ("[\"0.1.36\"]\n\"restart-db\" = \"fails work\"", "is not a build of this matrix"),
            ("\"restart-db\" = 3", "must be a verdict in quotes"),
        ] {
            let err = Expect::parse(text, "x.toml", &r, &builds).expect_err(text);
            assert!(err.contains(said), "{text}: {err}");
        }
    }
}
