//! `switchover`: a planned change of leader in the `--ha` cluster, through
//! Patroni (as an operator or a rolling maintenance does): the leader's
//! connections are closed, a standby is promoted, HAProxy routes the write
//! endpoint to it, the old leader follows again.

use async_trait::async_trait;
use serde::Deserialize;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, Reach, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "switchover",
    about: "a planned switchover of the --ha cluster's leader to its standby, through Patroni",
    fields: &[],
    lasting: Lasting::Instant,
    parse: |fields| Ok(Box::new(read_fields::<Switchover>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Switchover {}

#[async_trait]
impl Fault for Switchover {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        "the HA cluster's leader".into()
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        if reach.ha { Ok(()) } else { Err(format!("{name}: a switchover needs --ha (a high-availability cluster)")) }
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let server = cx.targets.server().ok_or("no HA cluster")?;
        let change =
            server.switchover().await.map_err(|e| Failure::NotUndone(format!("the switchover failed: {e}")))?;
        *cx.writes = Some(change.writes);
        Ok(change.detail)
    }
}
