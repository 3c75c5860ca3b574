//! No server: the store lives in the agent (duroxide's SQLite provider, in
//! its memory or on files in a directory this coordinator makes and
//! removes with the session).

use std::path::Path;

use super::DatabaseHost;
use crate::error::CoordinatorError;
use crate::plan::ProviderKind;
use crate::plan::provider::StoreSite;

pub struct InAgent {
    provider: ProviderKind,
    /// sqlite-file: where the runs' database files live (removed with it).
    dir: Option<tempfile::TempDir>,
}

impl InAgent {
    pub fn new(provider: ProviderKind) -> Result<Self, CoordinatorError> {
        let dir = match provider.spec().store {
            StoreSite::AgentFiles => {
                Some(tempfile::Builder::new().prefix(&format!("loadgen-{}-", provider.as_str())).tempdir().map_err(
                    |e| CoordinatorError::Local(format!("creating a directory for {}: {e}", provider.as_str())),
                )?)
            }
            StoreSite::AgentMemory | StoreSite::Server => None,
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
        let described = self.provider.spec().described;
        match &self.dir {
            Some(d) => format!("{described} in {}", d.path().display()),
            None => described.into(),
        }
    }

    fn host_label(&self) -> String {
        self.provider.spec().host_label.into()
    }

    fn is_server(&self) -> bool {
        false
    }

    fn run_files(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}
