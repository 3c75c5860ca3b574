//! Where a session's database lives, behind one trait: a user's URL
//! ([`url::UserUrl`]), the throwaway Postgres this coordinator starts
//! ([`throwaway::Throwaway`]), or no server at all because the store lives
//! in the agent ([`in_agent::InAgent`]). [`open`] picks one from the plan;
//! the session asks the host (its URL, how to name it, a server the faults
//! can stop) and never branches on which one it is. A high-availability
//! cluster is one more file here and its line in [`open`].

use std::path::Path;

use async_trait::async_trait;

use crate::error::CoordinatorError;
use crate::faults::Server;
use crate::notice::Observer;
use crate::plan::{Database, RunPlan};

pub mod ha;
pub mod in_agent;
pub mod throwaway;
pub mod url;

/// A session's database.
#[async_trait]
pub trait DatabaseHost: Send {
    /// The URL the coordinator and local agents connect with (a secret:
    /// never print it; see [`DatabaseHost::description`]).
    fn url(&self) -> &str;

    /// How reports name it (no password).
    fn description(&self) -> String;

    /// A file-name-safe label of where it runs, for tracked results.
    fn host_label(&self) -> String;

    /// It is a server the coordinator reaches itself (pre-flight, the
    /// connection plan); false when the store lives in the agent.
    fn is_server(&self) -> bool {
        true
    }

    /// It is removed at exit (a kept schema does not outlive it).
    fn is_throwaway(&self) -> bool {
        false
    }

    /// A server this coordinator controls, for the faults that stop it.
    fn server(&mut self) -> Option<&mut dyn Server> {
        None
    }

    /// Where the agent keeps a run's store files (sqlite-file).
    fn run_files(&self) -> Option<&Path> {
        None
    }

    /// Take down what it started (nothing for a user's database).
    async fn stop(&mut self) {}
}

/// Bring up (or reach) the plan's database.
pub async fn open(plan: &RunPlan, obs: &dyn Observer) -> Result<Box<dyn DatabaseHost>, CoordinatorError> {
    Ok(match &plan.database {
        Database::Url(u) => Box::new(url::UserUrl::new(u)?),
        Database::Embedded => Box::new(throwaway::Throwaway::start(obs).await?),
        Database::InAgent => Box::new(in_agent::InAgent::new(plan.provider)?),
        Database::Ha(replication) => Box::new(ha::Ha::start(*replication, obs).await?),
    })
}
