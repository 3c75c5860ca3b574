//! The audit's reads of a store only the agent reaches (SQLite lives in its
//! process): the agent's Inspect stream, turned into the audit's rows.

use std::collections::BTreeMap;
use std::time::Duration;

use loadgen_common::proto;
use loadgen_scenarios::{MetricStart, Observed};

use crate::agents::AgentLink;
use crate::db::audit::inspected::Inspected;
use crate::db::audit::query::InstanceRow;
use crate::error::CoordinatorError;

/// Bound on the whole inspection (a few calls per instance, in-process).
const INSPECT_TIMEOUT: Duration = Duration::from_secs(120);

/// Ask `link` for every instance of `run_id` and the latencies of `metrics`.
pub async fn inspect(
    link: &AgentLink,
    run_id: &str,
    metrics: &[(String, MetricStart)],
) -> Result<Inspected, CoordinatorError> {
    let fail = |detail: String| CoordinatorError::agent(&link.address, format!("inspecting the store: {detail}"));
    let request = proto::InspectRequest {
        run_id: run_id.to_string(),
        metrics: metrics
            .iter()
            .map(|(event, from)| proto::MetricEvent { event: event.clone(), raised_at: *from == MetricStart::RaisedAt })
            .collect(),
    };
    let mut client = link.client.clone();
    let read = async {
        let mut stream = client.inspect(request).await.map_err(|s| fail(s.message().to_string()))?.into_inner();
        let mut found = Inspected::default();
        while let Some(chunk) = stream.message().await.map_err(|s| fail(s.message().to_string()))? {
            found.rows.extend(chunk.instances.into_iter().map(|i| InstanceRow {
                id: i.id,
                orchestration: i.orchestration,
                observed: Observed {
                    status: i.status,
                    output: i.has_output.then_some(i.output),
                    output_len: i.output_len,
                    output_md5: i.output_md5,
                    executions: i.executions,
                    events: i.events.into_iter().collect::<BTreeMap<_, _>>(),
                },
            }));
            found.samples.extend(chunk.samples.into_iter().map(|s| (s.orchestration, s.event, s.ms)));
            if chunk.last {
                found.queued = chunk.queued;
                return Ok(found);
            }
        }
        Err(fail("the stream ended before its last chunk".into()))
    };
    tokio::time::timeout(INSPECT_TIMEOUT, read)
        .await
        .map_err(|_| fail(format!("no answer within {INSPECT_TIMEOUT:?}")))?
}
