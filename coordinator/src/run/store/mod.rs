//! Where a run's state lives, behind one trait: a schema of the database
//! under test that the coordinator reads itself ([`schema::SchemaStore`]),
//! or a store only the agent reaches (duroxide's SQLite provider,
//! [`agent::AgentStore`]). The run's phases ask the store (its facts, its
//! counters, what became of a lost agent's work, the audit) and never
//! branch on which one it is.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::db::audit::record::RunRecord;
use crate::db::audit::{AuditInput, AuditOutcome};
use crate::db::procedures::Snapshot;
use crate::db::watch::{DbWatch, Sampled};
use crate::db::{RunDb, SchemaCheck, XactCounters};
use crate::error::CoordinatorError;
use crate::model::procedures::ProcedureReport;
use crate::model::{DbSample, LostAgent};
use crate::notice::Observer;
use crate::plan::RunPlan;

use super::completions::{ClusterTracker, Route, TrackerStats};
use super::session::Session;
use super::settle::Orphaned;
use crate::agents::AgentLink;

pub mod agent;
pub mod schema;

/// A run's store, as the run's phases use it.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Where the run's state lives, for people ("schema loadgen_ab12").
    fn place(&self) -> String;

    /// The run's database as the coordinator reaches it (faults, the
    /// timeline, the cluster's completion tracker); none when only the
    /// agents reach the store.
    fn db(&self) -> Option<&Arc<RunDb>>;

    /// Where the agent keeps a file store (sqlite-file).
    fn agent_path(&self) -> Option<&Path> {
        None
    }

    /// The server's version and the settings that shape a run (empty when
    /// there is no server).
    async fn server(&self) -> (String, std::collections::BTreeMap<String, String>);

    /// After the agents prepared: whether the coordinator reads the store
    /// itself (else completions and the audit go through the agents).
    async fn check(&self, plan: &RunPlan) -> SchemaCheck;

    /// The database's transaction counters now (zero when it keeps none).
    async fn counters(&self) -> Result<XactCounters, CoordinatorError>;

    /// Wait (at most `bound`) for the agents' connections to the store to
    /// close, so the server's counters hold all of their calls.
    async fn agents_disconnected(&self, _bound: Duration) {}

    /// Per-procedure statistics now, when the server keeps them.
    async fn procedures(&self) -> Option<Snapshot>;

    /// Where the provider spent the database's time between two snapshots.
    fn procedure_report(&self, before: &Snapshot, after: &Snapshot, samples: &[DbSample]) -> Option<ProcedureReport>;

    /// Sample the database once a second from `started` (none without one).
    fn watch(&self, started: Instant) -> Option<DbWatch>;

    /// Keep the run record beside the run's data (for a later audit).
    async fn record(&self, r: &RunRecord) -> Result<(), CoordinatorError>;

    /// Wait (at most `bound`) for lost agents' instances to end, then say
    /// what became of them.
    async fn settle(
        &self,
        run_id: &str,
        links: &[AgentLink],
        orphaned: &[Orphaned<'_>],
        started_at: chrono::DateTime<chrono::Utc>,
        bound: Duration,
        obs: &dyn Observer,
    ) -> Result<Vec<LostAgent>, CoordinatorError>;

    /// Audit the run by reading the store.
    async fn audit(&self, input: &AuditInput) -> Result<AuditOutcome, CoordinatorError>;
}

/// Begin a run's store: a fresh schema (migrated by this build, or by the
/// agents' build), or the agent's own store.
pub async fn begin(
    session: &mut Session,
    plan: &RunPlan,
    run_id: &str,
    schema: &str,
) -> Result<Box<dyn RunStore>, CoordinatorError> {
    if plan.provider.in_agent() {
        let path = session.begin_store_run(run_id);
        return Ok(Box::new(agent::AgentStore { provider: plan.provider, path }));
    }
    let db = session.begin_run(run_id, schema, plan.agents_migrate).await?;
    Ok(Box::new(schema::SchemaStore::new(db, session.url.clone()).await))
}

/// What watches the database during a run: the timeline and the cluster's
/// completion tracker, each where the store allows it.
pub struct Watchers {
    watch: Option<DbWatch>,
    pub tracker: Option<ClusterTracker>,
}

impl Watchers {
    /// Start the timeline (and, with `cluster`, the completion tracker
    /// routing answers to `routes`).
    pub fn start(store: &dyn RunStore, started: Instant, cluster: Option<(Vec<Route>, Duration)>) -> Self {
        let tracker = match (store.db(), cluster) {
            (Some(db), Some((routes, poll))) => {
                Some(ClusterTracker::start(Arc::clone(db), db.schema_name(), routes, poll))
            }
            _ => None,
        };
        Watchers { watch: store.watch(started), tracker }
    }

    /// The latest database sample, for the live view.
    pub fn latest(&self) -> Option<tokio::sync::watch::Receiver<Option<DbSample>>> {
        self.watch.as_ref().map(|w| w.latest.clone())
    }

    /// Stop both; what they saw (with every instance the tracker saw end).
    pub async fn finish(self) -> (Sampled, TrackerStats, Option<Vec<crate::db::audit::acknowledged::Seen>>) {
        let sampled = match self.watch {
            Some(w) => w.finish().await,
            None => Sampled::default(),
        };
        let (tracked, seen) = match self.tracker {
            Some(t) => {
                let (stats, seen) = t.finish().await;
                (stats, Some(seen))
            }
            None => (TrackerStats::default(), None),
        };
        (sampled, tracked, seen)
    }
}
