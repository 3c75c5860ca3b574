//! A run schema on the database under test, which the coordinator reads
//! itself: its server's facts and counters, per-procedure statistics, the
//! timeline, the run record, what lost agents left and the audit. Errors
//! that could carry the URL are scrubbed of its password here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loadgen_common::secret;

use super::RunStore;
use crate::agents::AgentLink;
use crate::db::audit::record::RunRecord;
use crate::db::audit::{self, AuditInput, AuditOutcome};
use crate::db::procedures::{self, Availability, FetchProbe, Snapshot};
use crate::db::watch::{self, DbWatch};
use crate::db::{self, RunDb, SchemaCheck, XactCounters};
use crate::error::CoordinatorError;
use crate::model::procedures::ProcedureReport;
use crate::model::{DbSample, LostAgent};
use crate::notice::Observer;
use crate::plan::RunPlan;
use crate::run::settle::{self, Orphaned};

/// Test-only: treat the run's schema as one the coordinator cannot read, so
/// the fallback (tracking and audit through the agents' client API) runs on
/// an ordinary schema.
const CLIENT_API_KNOB: &str = "LOADGEN_TEST_CLIENT_API";

pub struct SchemaStore {
    db: Arc<RunDb>,
    /// The database URL (secret: only for connecting and scrubbing).
    url: String,
    /// Which statistics the server keeps (read once at the start).
    statistics: Availability,
}

impl SchemaStore {
    pub async fn new(db: Arc<RunDb>, url: String) -> Self {
        let statistics = procedures::availability(&db).await;
        SchemaStore { db, url, statistics }
    }

    /// A database error without the URL's password.
    fn scrub(&self, e: CoordinatorError) -> CoordinatorError {
        match e {
            CoordinatorError::Database(m) => CoordinatorError::Database(secret::scrub(&m, &self.url)),
            other => other,
        }
    }
}

#[async_trait]
impl RunStore for SchemaStore {
    fn place(&self) -> String {
        format!("schema {}", self.db.schema_name())
    }

    fn db(&self) -> Option<&Arc<RunDb>> {
        Some(&self.db)
    }

    async fn server(&self) -> (String, BTreeMap<String, String>) {
        (db::server_version(&self.db).await.unwrap_or_default(), watch::settings(&self.db).await)
    }

    async fn check(&self, plan: &RunPlan) -> SchemaCheck {
        if std::env::var_os(CLIENT_API_KNOB).is_some() {
            return SchemaCheck {
                notes: vec![format!(
                    "{CLIENT_API_KNOB}: completions tracked and the audit read through duroxide's client API"
                )],
                readable: false,
            };
        }
        if plan.agents_migrate {
            return db::agents_schema(&self.url, &self.db).await;
        }
        SchemaCheck { notes: Vec::new(), readable: true }
    }

    async fn counters(&self) -> Result<XactCounters, CoordinatorError> {
        db::xact_counters(&self.db).await.map_err(|e| self.scrub(e))
    }

    async fn agents_disconnected(&self, bound: Duration) {
        let open = db::agents_disconnected(&self.db, bound).await;
        if open > 0 {
            tracing::debug!(open, "agent connections still open; the server's last counters may lag a second");
        }
    }

    async fn procedures(&self) -> Option<Snapshot> {
        Some(procedures::snapshot(&self.db, self.db.schema_name(), &self.statistics).await)
    }

    fn procedure_report(&self, before: &Snapshot, after: &Snapshot, samples: &[DbSample]) -> Option<ProcedureReport> {
        Some(procedures::report(&self.statistics, self.db.schema_name(), before, after, samples))
    }

    fn watch(&self, started: Instant) -> Option<DbWatch> {
        let probe = FetchProbe::new(self.db.schema_name(), &self.statistics);
        Some(DbWatch::start(Arc::clone(&self.db), started, probe))
    }

    async fn record(&self, r: &RunRecord) -> Result<(), CoordinatorError> {
        audit::record::record(&self.db, r).await.map_err(|e| self.scrub(e))
    }

    async fn settle(
        &self,
        run_id: &str,
        links: &[AgentLink],
        orphaned: &[Orphaned<'_>],
        started_at: chrono::DateTime<chrono::Utc>,
        bound: Duration,
        obs: &dyn Observer,
    ) -> Result<Vec<LostAgent>, CoordinatorError> {
        settle::settle(&self.db, run_id, links, orphaned, started_at, bound, obs).await.map_err(|e| self.scrub(e))
    }

    async fn audit(&self, input: &AuditInput) -> Result<AuditOutcome, CoordinatorError> {
        audit::audit(&self.db, input).await.map_err(|e| self.scrub(e))
    }
}
