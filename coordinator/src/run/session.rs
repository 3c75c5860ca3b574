//! What a coordinator brings up for its runs and must take down on every path:
//! the database (its [`super::host`]: a URL, a throwaway cluster, or none), the agents (local processes or
//! connections to remote ones), and the schema of the run in progress.

use std::sync::Arc;

use crate::db::RunDb;

use super::host::DatabaseHost;
use crate::agents::local::{Launch, LocalAgents};
use crate::agents::{AgentLink, connect_all, discover};
use crate::db;
use crate::error::CoordinatorError;
use crate::notice::{Notice, Observer};
use crate::plan::{Access, AgentSource, Profile, RunPlan};

/// A connection plan that did not fit, and what would.
#[derive(Debug, Clone, Copy)]
struct Fit {
    agents: u64,
    runtimes: u64,
    pool: u64,
    coordinator: u64,
    available: u64,
}

/// The smallest pool the advice suggests: a pool of 1 works (measured) but
/// serialises every database call of a runtime's dispatchers.
const MIN_POOL: u64 = 2;

impl Fit {
    /// Each change that alone would make the plan fit (none when nothing does).
    fn advice(&self) -> Vec<String> {
        let room = self.available.saturating_sub(self.coordinator);
        let pools = self.agents * (self.runtimes + 1);
        let mut out = Vec::new();
        let pool = room / pools.max(1);
        if pool >= MIN_POOL && pool < self.pool {
            out.push(format!("--pool-max {pool} fits"));
        }
        let runtimes = (room / (self.agents * self.pool).max(1)).saturating_sub(1);
        if runtimes >= 1 && runtimes < self.runtimes {
            out.push(format!("--runtimes-per-agent {runtimes} fits"));
        }
        let agents = room / ((self.runtimes + 1) * self.pool).max(1);
        if agents >= 1 && agents < self.agents {
            out.push(format!("{agents} agent(s) fit"));
        }
        if out.is_empty() {
            out.push("no single change of pool, runtimes or agents fits".into());
        }
        out
    }
}

/// Database, agents and the current run's schema.
#[derive(Default)]
pub struct Session {
    /// Where the database lives ([`super::host`]).
    pub host: Option<Box<dyn DatabaseHost>>,
    pub local: Option<LocalAgents>,
    pub links: Vec<AgentLink>,
    /// The database URL (secret: never print it; see `database`).
    pub url: String,
    /// How reports name the database (password masked).
    pub database: String,
    /// File-name-safe database host label for tracking.
    pub db_host: String,
    /// Run id and schema (none on SQLite) of the run in progress.
    pub current: Option<(String, Option<Arc<RunDb>>)>,
    pub keep_schema: bool,
}

impl Session {
    /// Bring up the database and the agents, and check the agents can run `profile`.
    pub async fn open(
        &mut self,
        plan: &RunPlan,
        profile: &Profile,
        obs: &dyn Observer,
    ) -> Result<(), CoordinatorError> {
        self.keep_schema = plan.keep_schema;
        let host = super::host::open(plan, obs).await?;
        self.url = host.url().to_string();
        self.database = host.description();
        self.db_host = host.host_label();
        let server = host.is_server();
        self.host = Some(host);
        if !server {
            self.links = self.spawn_agents(plan, profile, obs).await?;
            crate::agents::check_builds(&self.links, plan.agents_migrate, plan.expect_build.as_deref())?;
            return crate::agents::check_clock_control(&self.links, &plan.faults.clock_agents());
        }
        db::preflight(&self.url).await?;
        self.links = self.spawn_agents(plan, profile, obs).await?;
        crate::agents::check_builds(&self.links, plan.agents_migrate, plan.expect_build.as_deref())?;
        crate::agents::check_clock_control(&self.links, &plan.faults.clock_agents())?;
        self.check_connections(profile).await?;
        if let Some(want) = profile.pool_max {
            for l in &self.links {
                if l.hello.pool_max != want {
                    return Err(CoordinatorError::agent(
                        &l.address,
                        format!(
                            "runs with a connection pool of {}, the profile needs {want}: restart it with --pool-max {want} (or DUROXIDE_PG_POOL_MAX={want})",
                            l.hello.pool_max
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Start local agents or reach running ones.
    async fn spawn_agents(
        &mut self,
        plan: &RunPlan,
        profile: &Profile,
        obs: &dyn Observer,
    ) -> Result<Vec<AgentLink>, CoordinatorError> {
        Ok(match &plan.agents {
            AgentSource::Local { count, bin, token, env } => {
                let clock_control = plan.faults.clock_agents();
                let launch = Launch {
                    bin,
                    database_url: &self.url,
                    log: &plan.log,
                    pool_max: profile.pool_max,
                    token,
                    env,
                    clock_control: &clock_control,
                };
                let local = LocalAgents::spawn(*count, &launch).await?;
                let addresses = local.addresses();
                self.local = Some(local);
                connect_all(&addresses, &Access { token: token.clone(), tls: None }).await?
            }
            AgentSource::Remote { entries, expect: Some(n), timeout, access } => {
                discover(entries, *n, *timeout, access, obs).await?
            }
            AgentSource::Remote { entries, expect: None, access, .. } => connect_all(entries, access).await?,
        })
    }

    /// Refuse a plan whose pools could need more connections than the server
    /// has left: every agent opens `runtimes + 1` pools of its pool size, and
    /// the coordinator one more.
    async fn check_connections(&self, profile: &Profile) -> Result<(), CoordinatorError> {
        let (max, reserved, in_use) = db::connection_limits(&self.url).await?;
        let coordinator_pool = u64::from(loadgen_common::process::pool_max_from_env());
        let per_agent: Vec<u64> = self
            .links
            .iter()
            .map(|l| u64::from(profile.runtimes_per_agent + 1) * u64::from(l.hello.pool_max))
            .collect();
        let need = per_agent.iter().sum::<u64>() + coordinator_pool;
        let available = max.saturating_sub(reserved).saturating_sub(in_use);
        if need > available {
            let pools: Vec<String> = self.links.iter().map(|l| l.hello.pool_max.to_string()).collect();
            let pool = self.links.iter().map(|l| l.hello.pool_max).max().unwrap_or(1);
            let fits = Fit {
                agents: self.links.len() as u64,
                runtimes: u64::from(profile.runtimes_per_agent),
                pool: u64::from(pool),
                coordinator: coordinator_pool,
                available,
            };
            return Err(CoordinatorError::TooFewConnections {
                need,
                available,
                detail: format!(
                    "({} agent(s) x ({} runtime(s) + 1 client) x pool {} + {coordinator_pool} for the coordinator) but the server has {available} available (max_connections {max}, {reserved} reserved, {in_use} in use); {}, or raise max_connections to at least {} (a pooler in front does not help: see docs/scale.md)",
                    self.links.len(),
                    profile.runtimes_per_agent,
                    pools.join("/"),
                    fits.advice().join(", "),
                    need + reserved + in_use,
                ),
            });
        }
        tracing::info!(need, available, "connection plan fits");
        Ok(())
    }

    /// Create and migrate the schema of a new run.
    /// A run whose store lives in the agent (SQLite): nothing to create;
    /// sqlite-file gets its own file in the session's directory.
    pub fn begin_store_run(&mut self, run_id: &str) -> Option<std::path::PathBuf> {
        self.current = Some((run_id.to_string(), None));
        self.host.as_ref().and_then(|h| h.run_files()).map(|d| d.join(format!("{run_id}.db")))
    }

    /// Create the run's schema with this build's migrations, or (when the
    /// agents migrate it with theirs) only connect, the schema still to come.
    pub async fn begin_run(
        &mut self,
        run_id: &str,
        schema: &str,
        agents_migrate: bool,
    ) -> Result<Arc<RunDb>, CoordinatorError> {
        let provider = Arc::new(if agents_migrate {
            RunDb::connect(&self.url, schema).await?
        } else {
            db::create_schema(&self.url, schema).await?
        });
        self.current = Some((run_id.to_string(), Some(Arc::clone(&provider))));
        Ok(provider)
    }

    /// Release every agent from `run_id`; returns what each handed back.
    pub async fn release_agents(&self, run_id: &str) -> Vec<crate::agents::calls::Released> {
        let all: Vec<usize> = (0..self.links.len()).collect();
        self.release_agents_among(run_id, &all).await
    }

    /// Release the agents at `indices` (lost ones are skipped: they cannot
    /// answer); returns what each handed back (nothing for the others).
    pub async fn release_agents_among(&self, run_id: &str, indices: &[usize]) -> Vec<crate::agents::calls::Released> {
        crate::agents::calls::release(&self.links, run_id, indices).await
    }

    /// Drop (or keep) the current run's schema.
    pub async fn end_run(&mut self, obs: &dyn Observer) {
        let Some((run_id, provider)) = self.current.take() else { return };
        let Some(provider) = provider else {
            // SQLite: the agent's release dropped an in-memory store; a
            // file store goes with its WAL and shared-memory files.
            if let Some(dir) = self.host.as_ref().and_then(|h| h.run_files()) {
                for suffix in ["db", "db-wal", "db-shm"] {
                    let _ = std::fs::remove_file(dir.join(format!("{run_id}.{suffix}")));
                }
            }
            return;
        };
        if self.keep_schema {
            if self.host.as_ref().is_some_and(|h| h.is_throwaway()) {
                obs.notice(&Notice::Note(
                    "--keep-schema has no lasting effect on the throwaway database, which is removed at exit".into(),
                ));
            } else {
                obs.notice(&Notice::Note(format!("schema {} kept", provider.schema_name())));
            }
        } else if let Err(e) = db::drop_schema(&provider).await {
            obs.notice(&Notice::Warning(format!(
                "{e}; drop it by hand: DROP SCHEMA {} CASCADE",
                provider.schema_name()
            )));
        }
    }

    /// Release agents, drop the current schema, stop local agents and the
    /// throwaway database. Safe to call on any path, more than once.
    pub async fn close(&mut self, obs: &dyn Observer) {
        if let Some((run_id, _)) = &self.current {
            let run_id = run_id.clone();
            self.release_agents(&run_id).await;
        }
        self.end_run(obs).await;
        self.links.clear();
        if let Some(mut local) = self.local.take() {
            local.stop().await;
        }
        if let Some(mut host) = self.host.take() {
            host.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Fit;

    #[test]
    fn a_plan_that_does_not_fit_is_told_what_would() {
        // 2 agents x (20 + 1) pools x 20 = 840, + 10: the server has 90.
        let f = Fit { agents: 2, runtimes: 20, pool: 20, coordinator: 10, available: 90 };
        assert_eq!(f.advice(), ["--runtimes-per-agent 1 fits"]);
        // 16 agents x 2 pools x 10 = 320 + 10 against 200: a pool of 5, or 9 agents.
        let f = Fit { agents: 16, runtimes: 1, pool: 10, coordinator: 10, available: 200 };
        assert_eq!(f.advice(), ["--pool-max 5 fits", "9 agent(s) fit"]);
        let f = Fit { agents: 1000, runtimes: 1, pool: 10, coordinator: 10, available: 90 };
        assert_eq!(f.advice(), ["4 agent(s) fit"]);
        let f = Fit { agents: 1, runtimes: 1, pool: 10, coordinator: 10, available: 12 };
        assert_eq!(f.advice(), ["no single change of pool, runtimes or agents fits"]);
    }
}
