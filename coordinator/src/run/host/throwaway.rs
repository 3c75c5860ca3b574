//! The throwaway Postgres: started from the installed server binaries on a
//! free loopback port, removed at exit; the faults can crash or pause it.

use std::time::Duration;

use async_trait::async_trait;

use super::DatabaseHost;
use crate::db::embedded::{EmbeddedPostgres, Shutdown};
use crate::error::CoordinatorError;
use crate::faults::Server;
use crate::notice::{Notice, Observer};

pub struct Throwaway {
    /// Until stopped.
    pg: Option<EmbeddedPostgres>,
    url: String,
    port: u16,
}

impl Throwaway {
    pub async fn start(obs: &dyn Observer) -> Result<Self, CoordinatorError> {
        let pg = EmbeddedPostgres::start().await?;
        let host = Throwaway { url: pg.url().to_string(), port: pg.port(), pg: Some(pg) };
        obs.notice(&Notice::DatabaseStarted { description: &host.description() });
        Ok(host)
    }
}

#[async_trait]
impl DatabaseHost for Throwaway {
    fn url(&self) -> &str {
        &self.url
    }

    fn description(&self) -> String {
        format!("throwaway Postgres on 127.0.0.1:{}", self.port)
    }

    fn host_label(&self) -> String {
        "embedded".into()
    }

    fn is_throwaway(&self) -> bool {
        true
    }

    fn server(&mut self) -> Option<&mut dyn Server> {
        Some(self)
    }

    async fn stop(&mut self) {
        // Stopping waits on the server's processes: off the async threads.
        if let Some(mut pg) = self.pg.take() {
            tokio::task::spawn_blocking(move || pg.stop()).await.ok();
        }
    }
}

#[async_trait]
impl Server for Throwaway {
    fn pid(&self) -> Option<u32> {
        self.pg.as_ref().and_then(EmbeddedPostgres::pid)
    }

    async fn crash_and_restart(&mut self, down: Duration) -> Result<(), String> {
        let pg = self.pg.as_mut().ok_or("the throwaway Postgres was stopped")?;
        pg.restart(down, Shutdown::Immediate).await.map_err(|e| e.to_string())
    }
}
