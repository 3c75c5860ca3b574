//! What a coordinator brings up for its runs and must take down on every path:
//! the database (URL or throwaway cluster), the agents (local processes or
//! connections to remote ones), and the schema of the run in progress.

use duroxide_pg::PostgresProvider;
use loadgen_common::config::Profile;
use loadgen_common::dburl::DbUrl;
use loadgen_common::embedded_pg::EmbeddedPostgres;
use loadgen_common::proto;
use loadgen_common::secret;
use std::time::Duration;

use crate::agents::{Access, AgentLink, connect_all, discover};
use crate::cli::Args;
use crate::db;
use crate::error::CoordinatorError;
use crate::local::{LocalAgents, find_agent_binary};

/// Bound on Release (stopping the driver and shutting runtimes down).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(45);

/// Database, agents and the current run's schema.
#[derive(Default)]
pub struct Session {
    pub embedded: Option<EmbeddedPostgres>,
    pub local: Option<LocalAgents>,
    pub links: Vec<AgentLink>,
    /// The database URL (secret: never print it; see `database`).
    pub url: String,
    /// How reports name the database (password masked).
    pub database: String,
    /// File-name-safe database host label for tracking.
    pub db_host: String,
    /// Run id and schema owner of the run in progress.
    pub current: Option<(String, std::sync::Arc<PostgresProvider>)>,
    pub keep_schema: bool,
}

impl Session {
    /// Bring up the database and the agents, and check the agents can run `profile`.
    pub async fn open(
        &mut self,
        args: &Args,
        profile: &Profile,
        addresses: Vec<String>,
    ) -> Result<(), CoordinatorError> {
        self.keep_schema = args.keep_schema;
        match &args.database_url {
            Some(u) => {
                self.url = u.clone();
                self.database = secret::mask_url(u);
                self.db_host = DbUrl::parse(u).map_err(|e| CoordinatorError::Usage(e.to_string()))?.host_label();
            }
            None => {
                let pg = EmbeddedPostgres::start().await?;
                self.url = pg.url().to_string();
                self.database = format!("throwaway Postgres on 127.0.0.1:{}", pg.port());
                self.db_host = "embedded".into();
                eprintln!("no --database-url given: started a {} (removed at exit)", self.database);
                self.embedded = Some(pg);
            }
        }
        db::preflight(&self.url).await?;
        let (addresses, access) = match args.local {
            Some(n) => {
                // Agents we spawn get a fresh token of their own, and plain
                // HTTP/2 on loopback.
                let token = args.token.clone().unwrap_or_else(loadgen_common::auth::new_token);
                let bin = find_agent_binary(args.agent_bin.as_deref())?;
                let local = LocalAgents::spawn(n, &bin, &self.url, &args.log, profile.pool_max, &token).await?;
                let addrs = local.addresses();
                self.local = Some(local);
                (addrs, Access { token, tls: None })
            }
            None => (addresses, remote_access(args)?),
        };
        self.links = match args.expect_agents {
            Some(n) if args.local.is_none() => discover(&addresses, n, args.agents_timeout, &access).await?,
            _ => connect_all(&addresses, &access).await?,
        };
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
            return Err(CoordinatorError::Usage(format!(
                "the plan needs up to {need} connections ({} agent(s) x ({} runtime(s) + 1 client) x pool {} + {coordinator_pool} for the coordinator) but the server has {available} available (max_connections {max}, {reserved} reserved, {in_use} in use); lower --pool-max or --runtimes-per-agent, use fewer agents, or raise max_connections",
                self.links.len(),
                profile.runtimes_per_agent,
                pools.join("/"),
            )));
        }
        tracing::info!(need, available, "connection plan fits");
        Ok(())
    }

    /// Create and migrate the schema of a new run.
    pub async fn begin_run(&mut self, run_id: &str, schema: &str) -> Result<&PostgresProvider, CoordinatorError> {
        let provider = db::create_schema(&self.url, schema).await?;
        let (_, p) = self.current.insert((run_id.to_string(), std::sync::Arc::new(provider)));
        Ok(p)
    }

    /// Release every agent from `run_id`; returns each agent's late activity count.
    pub async fn release_agents(&self, run_id: &str) -> Vec<u64> {
        let all: Vec<usize> = (0..self.links.len()).collect();
        self.release_agents_among(run_id, &all).await
    }

    /// Release the agents at `indices` (lost ones are skipped: they cannot
    /// answer); returns every agent's late activity count (0 for the others).
    pub async fn release_agents_among(&self, run_id: &str, indices: &[usize]) -> Vec<u64> {
        let mut set = tokio::task::JoinSet::new();
        for l in indices.iter().filter_map(|&i| self.links.get(i)) {
            let mut client = l.client.clone();
            let (index, address, run_id) = (l.index, l.address.clone(), run_id.to_string());
            set.spawn(async move {
                let mut req = tonic::Request::new(proto::ReleaseRequest { run_id });
                req.set_timeout(RELEASE_TIMEOUT);
                match client.release(req).await {
                    Ok(r) => (index, r.into_inner().late_activities),
                    Err(s) => {
                        tracing::warn!(agent = %address, error = %s.message(), "release failed");
                        (index, 0)
                    }
                }
            });
        }
        let mut late = vec![0; self.links.len()];
        while let Some(Ok((i, n))) = set.join_next().await {
            if let Some(slot) = late.get_mut(i as usize) {
                *slot = n;
            }
        }
        late
    }

    /// Drop (or keep) the current run's schema.
    pub async fn end_run(&mut self) {
        let Some((_, provider)) = self.current.take() else { return };
        if self.keep_schema {
            if self.embedded.is_some() {
                eprintln!(
                    "note: --keep-schema has no lasting effect on the throwaway database, which is removed at exit"
                );
            } else {
                eprintln!("schema {} kept", provider.schema_name());
            }
        } else if let Err(e) = db::drop_schema(&provider).await {
            eprintln!("warning: {e}; drop it by hand: DROP SCHEMA {} CASCADE", provider.schema_name());
        }
    }

    /// Release agents, drop the current schema, stop local agents and the
    /// throwaway database. Safe to call on any path, more than once.
    pub async fn close(&mut self) {
        if let Some((run_id, _)) = &self.current {
            let run_id = run_id.clone();
            self.release_agents(&run_id).await;
        }
        self.end_run().await;
        self.links.clear();
        if let Some(mut local) = self.local.take() {
            local.stop().await;
        }
        if let Some(mut pg) = self.embedded.take() {
            tokio::task::spawn_blocking(move || pg.stop()).await.ok();
        }
    }
}

/// Token and TLS settings for remote agents.
fn remote_access(args: &Args) -> Result<Access, CoordinatorError> {
    let Some(token) = args.token.clone() else {
        return Err(CoordinatorError::Usage(
            "--agents needs the agents' shared token: set LOADGEN_TOKEN (or pass --token)".into(),
        ));
    };
    loadgen_common::auth::validate_token(&token).map_err(CoordinatorError::Usage)?;
    let tls = match &args.tls_ca {
        Some(path) => {
            let ca = std::fs::read(path)
                .map_err(|e| CoordinatorError::Usage(format!("cannot read --tls-ca {}: {e}", path.display())))?;
            Some((ca, args.tls_domain.clone()))
        }
        None => None,
    };
    Ok(Access { token, tls })
}

/// Check the flags that need no database or agent: returns the `--agents`
/// entries (placeholders for --local; a name may stand for several agents).
pub fn plan_agents(args: &Args) -> Result<Vec<String>, CoordinatorError> {
    match args.local {
        Some(0) => Err(CoordinatorError::Usage("--local needs at least 1 agent".into())),
        Some(n) => {
            find_agent_binary(args.agent_bin.as_deref())?;
            Ok(vec![String::new(); n as usize])
        }
        None => {
            if args.agents.is_empty() {
                return crate::agents::parse_agent_list(&args.agents);
            }
            if args.database_url.is_none() {
                return Err(CoordinatorError::Usage(
                    "--agents needs --database-url (or DATABASE_URL): the coordinator prepares the schema the remote agents use"
                        .into(),
                ));
            }
            remote_access(args)?;
            if args.expect_agents == Some(0) {
                return Err(CoordinatorError::Usage("--expect-agents needs at least 1 agent".into()));
            }
            crate::agents::parse_agent_list(&args.agents)
        }
    }
}
