//! `pause-db`: SIGSTOP the throwaway Postgres and its backends for the
//! fault's duration, then SIGCONT: a database that hangs without closing
//! its connections.

use async_trait::async_trait;
use loadgen_common::process::{self, SIGSTOP};
use serde::Deserialize;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "pause-db",
    about: "SIGSTOP the throwaway Postgres and its backends for the duration, then SIGCONT",
    fields: &[],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<PauseDb>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseDb {}

#[async_trait]
impl Fault for PauseDb {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        "the throwaway Postgres".into()
    }

    fn holds_server(&self) -> bool {
        true
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let server = cx.targets.server().ok_or("no throwaway Postgres to pause")?;
        let postmaster = server.pid().ok_or("the throwaway Postgres is not running")?;
        let mut pids = process::children(postmaster);
        pids.push(postmaster);
        for pid in &pids {
            process::signal(*pid, SIGSTOP);
        }
        // The postmaster resumes first (it is last in the list: reverse);
        // the guard resumes them all even if this future is dropped.
        let resume = process::Resume::new(pids.iter().rev().copied().collect());
        tokio::time::sleep(cx.length).await;
        let n = resume.len();
        drop(resume);
        Ok(format!("{n} server processes stopped for {}", fmt_duration(cx.length)))
    }
}
