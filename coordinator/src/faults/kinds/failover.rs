//! `failover`: the `--ha` cluster's leader dies (its Patroni and Postgres
//! killed with SIGKILL, as a machine that fails); once its leader key
//! expires a standby is promoted and HAProxy routes to it. Once another
//! node leads (and the fault's duration has passed) the old node is started
//! again and follows.

use async_trait::async_trait;
use serde::Deserialize;

use crate::faults::{Apply, Failure, Fault, FaultDef, Lasting, Reach, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "failover",
    about: "kill the --ha cluster's leader (Patroni and Postgres); a standby takes over; the node is restarted once it has and the duration has passed",
    fields: &[],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<Failover>(fields)?)),
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Failover {}

#[async_trait]
impl Fault for Failover {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        "the HA cluster's leader".into()
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        if reach.ha { Ok(()) } else { Err(format!("{name}: a failover needs --ha (a high-availability cluster)")) }
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let server = cx.targets.server().ok_or("no HA cluster")?;
        let change =
            server.fail_leader(cx.length).await.map_err(|e| Failure::NotUndone(format!("the failover failed: {e}")))?;
        *cx.writes = Some(change.writes);
        Ok(change.detail)
    }
}
