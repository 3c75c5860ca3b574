//! The resolved run plan: everything a run (or a suite, sweep, bench) needs,
//! checked once before anything starts. The command line and the profile go
//! in (see `cli::resolve`); a [`RunPlan`] comes out, and library code never
//! sees the clap structs. Derived values are computed here once: the budget
//! split and rate shares ([`slices`]), the workload with its options resolved
//! ([`workload`]), the output targets ([`outputs`]).
//!
//! - [`profile`]: a profile (the TOML schema) and its validation;
//! - [`profiles`]: the built-in profiles and a profile file, looked up by name;
//! - [`load`]: the load over time (stages, or a constant rate or budget);
//! - [`workload`]: the scenario (or mix) with its options, built to check them;
//! - [`slices`]: each agent's share of the budget, the rate and the seed;
//! - [`outputs`]: result files and directories, checked writable up front;
//! - [`provider`]: the duroxide providers, one registry entry each;
//! - [`resolved`]: a profile resolved for one run (what the run, its results
//!   and the renderers read).

use std::path::PathBuf;
use std::time::Duration;

pub mod load;
pub mod outputs;
pub mod profile;
pub mod profiles;
pub mod provider;
pub mod resolved;
pub mod slices;
pub mod workload;

pub use outputs::{LiveMode, Outputs};
pub use profile::{Arrival, ConfigError, Profile};
pub use provider::ProviderKind;
pub use resolved::ProfilePlan;
pub use slices::AgentSlice;
pub use workload::WorkloadPlan;

/// Everything a run needs, resolved and checked.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The profile with every override applied (a suite keeps its list).
    pub profile: Profile,
    /// One profile per run: itself, or one per suite combination.
    pub runs: Vec<Profile>,
    pub workload: WorkloadPlan,
    pub agents: AgentSource,
    pub database: Database,
    pub outputs: Outputs,
    pub tracking: Tracking,
    /// Who learns completions, and the interval of the batched query.
    pub completion_source: CompletionSource,
    pub completion_poll: Duration,
    pub on_agent_loss: OnAgentLoss,
    /// Faults to inject during the run (checked against what it can reach).
    pub faults: crate::faults::Schedule,
    pub keep_schema: bool,
    /// The agents apply their own build's migrations to each run's schema
    /// (A/B), instead of the coordinator applying its build's.
    pub agents_migrate: bool,
    /// The duroxide-pg release every agent must report (`--build`).
    pub expect_build: Option<String>,
    /// Agent binaries of the releases the faults need (an upgrade), made
    /// before the run.
    pub agent_builds: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// Which duroxide provider the runtimes use.
    pub provider: ProviderKind,
    /// Tracing filter (also handed to local agents).
    pub log: String,
}

/// Where the agents come from.
#[derive(Clone, Debug)]
pub enum AgentSource {
    /// Spawn this many agent processes on loopback.
    Local {
        count: u32,
        bin: PathBuf,
        token: String,
        /// Extra environment for the agent processes (A/B variants).
        env: Vec<(String, String)>,
    },
    /// Drive running agents.
    Remote {
        /// `host:port` entries; a name may stand for several agents.
        entries: Vec<String>,
        /// Wait until this many distinct agents answer.
        expect: Option<u32>,
        timeout: Duration,
        access: Access,
    },
}

impl AgentSource {
    /// The fewest agents the plan can have (a name may resolve to several):
    /// what a budget must cover before anything starts.
    pub fn fewest(&self) -> usize {
        match self {
            AgentSource::Local { count, .. } => *count as usize,
            AgentSource::Remote { entries, expect, .. } => expect.map_or(entries.len(), |n| n as usize),
        }
    }
}

/// How to reach agents: the shared token, and TLS when asked for.
#[derive(Clone)]
pub struct Access {
    pub token: String,
    /// PEM CA certificate and the name to verify (None: each address's host).
    pub tls: Option<(Vec<u8>, Option<String>)>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("token", &"***").field("tls", &self.tls.is_some()).finish()
    }
}

/// The database under test.
#[derive(Clone)]
pub enum Database {
    /// A URL the user gave (a secret: never print it; see [`Database::describe`]).
    Url(String),
    /// A throwaway cluster started from the installed server binaries.
    Embedded,
    /// No server: the store lives in the agent (SQLite).
    InAgent,
    /// A throwaway high-availability cluster (etcd, Patroni, HAProxy) with
    /// this replication between its nodes.
    Ha(Replication),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Url(u) => write!(f, "Url({})", loadgen_common::secret::mask_url(u)),
            Database::Embedded => write!(f, "Embedded"),
            Database::InAgent => write!(f, "InAgent"),
            Database::Ha(r) => write!(f, "Ha({})", r.as_str()),
        }
    }
}

/// What happens to results over time.
#[derive(Clone, Debug, Default)]
pub struct Tracking {
    /// Append to the per-host markdown file and the history.
    pub track: bool,
    /// Mark the database as remote/cloud.
    pub cloud: bool,
    pub results_dir: PathBuf,
    /// Compare with this result file instead of the tracked history.
    pub baseline: Option<PathBuf>,
    /// A regression or memory growth fails the run.
    pub fail_on_regression: bool,
}

/// Who learns which instances reached a terminal status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionSource {
    /// The coordinator: one batched query per tick for every agent's
    /// instances; the generator's query rate does not grow with the agents.
    #[default]
    Cluster,
    /// Each agent queries for its own instances every tick (the behaviour
    /// before protocol revision 5; its query rate grows with the agents).
    Agent,
}

impl CompletionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionSource::Cluster => "cluster",
            CompletionSource::Agent => "agent",
        }
    }
}

/// What to do when an agent is lost mid-run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnAgentLoss {
    /// Stop the other agents too (they drain and report); the run is degraded.
    Abort,
    /// Finish with the remaining agents; the run is degraded.
    #[default]
    Continue,
}

/// A plan that cannot be carried out as asked; nothing was started.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Scenario(#[from] loadgen_scenarios::ScenarioError),
    #[error(transparent)]
    Split(#[from] loadgen_common::split::ApportionError),
    #[error(transparent)]
    Share(#[from] loadgen_common::load::ShareError),
    #[error("{flag} {path}: {detail}")]
    Output { flag: &'static str, path: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

/// Replication between the leader and its standbys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replication {
    /// Patroni's synchronous mode: a commit waits for one standby.
    Sync,
    /// Streaming replication without waiting: a failover may lose what the
    /// leader acknowledged last.
    #[default]
    Async,
}

impl Replication {
    pub fn as_str(self) -> &'static str {
        match self {
            Replication::Sync => "sync",
            Replication::Async => "async",
        }
    }
}
