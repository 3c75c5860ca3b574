//! A store only the agent reaches (duroxide's SQLite provider, in memory or
//! on a file): the coordinator has no server to ask, so facts, counters
//! and statistics are empty, completions and the audit go through the
//! agent, and a lost agent's work cannot be looked at (it was in the agent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::RunStore;
use crate::agents::AgentLink;
use crate::db::audit::record::RunRecord;
use crate::db::audit::{AuditInput, AuditOutcome};
use crate::db::procedures::Snapshot;
use crate::db::watch::DbWatch;
use crate::db::{RunDb, SchemaCheck, XactCounters};
use crate::error::CoordinatorError;
use crate::model::procedures::ProcedureReport;
use crate::model::{DbSample, LostAgent};
use crate::notice::Observer;
use crate::plan::{ProviderKind, RunPlan};
use crate::run::settle::{self, Orphaned};

pub struct AgentStore {
    pub provider: ProviderKind,
    /// sqlite-file: the run's file.
    pub path: Option<PathBuf>,
}

#[async_trait]
impl RunStore for AgentStore {
    fn place(&self) -> String {
        format!("the agent's {} store", self.provider.as_str())
    }

    fn db(&self) -> Option<&Arc<RunDb>> {
        None
    }

    fn agent_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    async fn server(&self) -> (String, BTreeMap<String, String>) {
        (String::new(), BTreeMap::new())
    }

    async fn check(&self, _plan: &RunPlan) -> SchemaCheck {
        // The agent tracks completions on its store with its own query;
        // the audit reads through it.
        SchemaCheck { notes: Vec::new(), readable: false }
    }

    async fn counters(&self) -> Result<XactCounters, CoordinatorError> {
        Ok(XactCounters::default())
    }

    async fn procedures(&self) -> Option<Snapshot> {
        None
    }

    fn procedure_report(&self, _: &Snapshot, _: &Snapshot, _: &[DbSample]) -> Option<ProcedureReport> {
        None
    }

    fn watch(&self, _started: Instant) -> Option<DbWatch> {
        None
    }

    async fn record(&self, _r: &RunRecord) -> Result<(), CoordinatorError> {
        Ok(())
    }

    async fn settle(
        &self,
        _run_id: &str,
        links: &[AgentLink],
        orphaned: &[Orphaned<'_>],
        _started_at: chrono::DateTime<chrono::Utc>,
        _bound: Duration,
        _obs: &dyn Observer,
    ) -> Result<Vec<LostAgent>, CoordinatorError> {
        // The store was in the lost agent: nothing is left to look at.
        Ok(settle::unsettled(links, orphaned))
    }

    async fn audit(&self, _input: &AuditInput) -> Result<AuditOutcome, CoordinatorError> {
        Err(CoordinatorError::Local("no agent left to inspect the store".into()))
    }
}
