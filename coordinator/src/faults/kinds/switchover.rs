//! `switchover`: a planned change of leader in the `--ha` cluster, through
//! Patroni (as an operator or a rolling maintenance does): the leader's
//! connections are closed, a standby is promoted, HAProxy routes the write
//! endpoint to it, the old leader follows again. With `drain = true` HAProxy
//! holds every client while the leader changes (the old leader's sessions
//! cut first, so clients see a dropped connection rather than a statement
//! ended by the shutdown, SQLSTATE 57P01; the new leader back once it takes
//! writes).

use async_trait::async_trait;
use serde::Deserialize;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, Reach, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "switchover",
    about: "a planned switchover of the --ha cluster's leader to its standby, through Patroni",
    fields: &[(
        "drain",
        "true: HAProxy holds every client while the leader changes (the old leader's sessions cut first, the new leader back once it takes writes); default false",
    )],
    lasting: Lasting::Instant,
    parse: |fields| Ok(Box::new(read_fields::<Switchover>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Switchover {
    #[serde(default)]
    drain: bool,
}

#[async_trait]
impl Fault for Switchover {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        if self.drain { "the HA cluster's leader (drained first)".into() } else { "the HA cluster's leader".into() }
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        if reach.ha { Ok(()) } else { Err(format!("{name}: a switchover needs --ha (a high-availability cluster)")) }
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let server = cx.targets.server().ok_or("no HA cluster")?;
        let change = server
            .switchover(self.drain)
            .await
            .map_err(|e| Failure::NotUndone(format!("the switchover failed: {e}")))?;
        *cx.writes = Some(change.writes);
        Ok(change.detail)
    }
}
