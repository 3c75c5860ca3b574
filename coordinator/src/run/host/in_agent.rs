//! No server: the store lives in the agent (duroxide's SQLite provider, in
//! its memory or on files in a directory this coordinator makes and
//! removes with the session).

use std::path::Path;

use super::DatabaseHost;
use crate::error::CoordinatorError;
use crate::plan::ProviderKind;

pub struct InAgent {
    provider: ProviderKind,
    /// sqlite-file: where the runs' database files live (removed with it).
    dir: Option<tempfile::TempDir>,
}

impl InAgent {
    pub fn new(provider: ProviderKind) -> Result<Self, CoordinatorError> {
        let dir = match provider {
            ProviderKind::SqliteFile => Some(
                tempfile::Builder::new()
                    .prefix("loadgen-sqlite-")
                    .tempdir()
                    .map_err(|e| CoordinatorError::Local(format!("creating a directory for SQLite: {e}")))?,
            ),
            _ => None,
        };
        Ok(InAgent { provider, dir })
    }
}

impl DatabaseHost for InAgent {
    fn url(&self) -> &str {
        // The agent needs no server; its URL only says so.
        "sqlite:"
    }

    fn description(&self) -> String {
        match (&self.dir, self.provider) {
            (Some(d), _) => format!("duroxide's SQLite provider on files in {}", d.path().display()),
            _ => "duroxide's SQLite provider in the agent's memory".into(),
        }
    }

    fn host_label(&self) -> String {
        "sqlite".into()
    }

    fn is_server(&self) -> bool {
        false
    }

    fn run_files(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}
