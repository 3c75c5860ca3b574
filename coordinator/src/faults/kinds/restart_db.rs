//! `restart-db`: crash the throwaway Postgres (every backend dies at once,
//! as on a power loss), keep it down for the fault's duration, start it
//! again on the same data.

use async_trait::async_trait;
use serde::Deserialize;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "restart-db",
    about: "crash the throwaway Postgres, keep it down for the duration, start it again",
    fields: &[],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<RestartDb>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartDb {}

#[async_trait]
impl Fault for RestartDb {
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
        let server = cx.targets.server().ok_or("no throwaway Postgres to restart")?;
        server
            .crash_and_restart(cx.length)
            .await
            .map(|()| format!("crashed (every backend at once), down {}, started again", fmt_duration(cx.length)))
            .map_err(|e| Failure::NotUndone(format!("Postgres did not come back: {e}")))
    }
}
