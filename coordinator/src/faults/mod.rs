//! Fault kinds: what a fault schedule can break. Each kind is one file in
//! [`kinds`] and one line in [`kinds::KINDS`], as scenarios are: a
//! [`FaultDef`] (its name, what it does, its fields and whether it lasts)
//! that parses a `[[fault]]` table into a [`Fault`], which checks itself
//! against what the run can reach, says what it targets, and applies itself
//! (and undoes itself after its duration) through [`Targets`].
//!
//! This module is data and behaviour against abstract capabilities: it
//! knows no agent link, no database handle and no protocol. The run's side
//! ([`crate::injector`]) implements [`Targets`] over the run's database, the
//! throwaway server, the local agent processes and the agents' control
//! streams, runs the schedule and judges what each fault did. A kind that
//! needs a capability the run does not offer yet adds one method to
//! [`Targets`]; a kind that needs none is its file and its registry line.
//!
//! - [`schedule`]: the `[[fault]]` tables (data), parsed and checked into a
//!   resolved [`Schedule`];
//! - [`kinds`]: the kinds, one file each, and their registry.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub mod kinds;
mod outage;
pub mod schedule;

pub use kinds::{KINDS, find};
pub use outage::WriteOutage;
pub use schedule::{FaultSpec, Planned, Reach, Schedule};

/// One registry entry: a kind's name and how to read its table.
pub struct FaultDef {
    /// The `kind` in a `[[fault]]` table (kebab-case).
    pub name: &'static str,
    /// What it does, one line (help and docs).
    pub about: &'static str,
    /// The fields it takes beyond `kind`, `at` and `duration`, each with
    /// what it means (help and docs).
    pub fields: &'static [(&'static str, &'static str)],
    /// Whether it takes a `duration`.
    pub lasting: Lasting,
    /// Read the kind's own fields (everything but `kind`, `at` and
    /// `duration`); an unknown field is an error.
    pub parse: fn(toml::Table) -> Result<Box<dyn Fault>, String>,
}

impl fmt::Debug for FaultDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Whether a kind lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lasting {
    /// It happens at once (a duration is refused).
    Instant,
    /// It lasts `duration`, which must be given.
    Required,
    /// It may last `duration` (default none).
    Optional,
}

/// A fault of one kind with its fields read: what a schedule holds.
#[async_trait]
pub trait Fault: Send + Sync + fmt::Debug {
    /// Its kind's name.
    fn kind(&self) -> &'static str;

    /// What it targets, for people ("agent 2", "the throwaway Postgres").
    fn target(&self) -> String;

    /// Refuse what this run cannot do (beyond the timing every kind gets
    /// checked for): `name` starts the message ("fault pause-db at 5s").
    fn check(&self, _name: &str, _reach: &Reach) -> Result<(), String> {
        Ok(())
    }

    /// It stops or pauses the database server itself: only the throwaway
    /// one, and never two such faults at once.
    fn holds_server(&self) -> bool {
        false
    }

    /// It acts through the agents' relays (they must run one).
    fn needs_relay(&self) -> bool {
        false
    }

    /// The agent build (a duroxide-pg release) it needs on this machine,
    /// made (or found in the cache) before the run starts.
    fn agent_build(&self) -> Option<&str> {
        None
    }

    /// The agent whose wall clock it shifts (that agent must run with
    /// `--clock-control`; the local launcher starts it so).
    fn clock_agent(&self) -> Option<u32> {
        None
    }

    /// The agent process it kills or freezes (that agent's loss is planned).
    fn agent_loss(&self) -> Option<AgentLoss> {
        None
    }

    /// Apply it, hold it for `cx.length`, undo it; what it did, for the
    /// report ("7 of 12 backends terminated").
    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure>;
}

/// An agent process a fault takes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentLoss {
    pub agent: u32,
    /// It does not come back (its share of the load is gone for the rest
    /// of the run), as opposed to a freeze.
    pub permanent: bool,
}

/// What `apply` gets: the fault's place in the schedule, how long it lasts,
/// and what it can reach.
pub struct Apply<'a> {
    /// The fault's index in the schedule (agents echo it in their reports).
    pub id: u32,
    /// Its duration (zero for instantaneous faults).
    pub length: Duration,
    pub targets: &'a mut dyn Targets,
    /// What writes saw while it went, for a kind that measured it.
    pub writes: &'a mut Option<WriteOutage>,
}

/// Why a fault failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// It did not happen (the run went on as before).
    NotApplied(String),
    /// It happened and could not be undone (the server did not come back):
    /// the run stops.
    NotUndone(String),
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::NotApplied(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure::NotApplied(e.to_string())
    }
}

/// What a run offers its faults while it runs (implemented by the run over
/// its database, server, agent processes and control streams).
#[async_trait]
pub trait Targets: Send {
    /// The run's database, when it is on Postgres.
    fn database(&self) -> Option<&sqlx::PgPool>;

    /// The run's schema in that database.
    fn schema(&self) -> Option<&str>;

    /// The throwaway server, when this coordinator started it.
    fn server(&mut self) -> Option<&mut dyn Server>;

    /// The agent binary of duroxide-pg release `build`, made before the run
    /// (for the faults whose [`Fault::agent_build`] names it).
    fn agent_binary(&self, build: &str) -> Option<std::path::PathBuf>;

    /// Local agent `agent`'s process id.
    fn agent_pid(&self, agent: u32) -> Option<u32>;

    /// How many agents the run has.
    fn agent_count(&self) -> u32;

    /// Ask agent `agent` to apply `action` (over its control stream); false
    /// when its stream is closed.
    fn tell_agent(&self, agent: u32, action: AgentAction) -> bool;

    /// Wait for agent `agent`'s report on the action with `id`: what it
    /// did, or why it failed; `None` when the agent ended first.
    async fn agent_report(&mut self, agent: u32, id: u32) -> Option<Result<String, String>>;
}

/// The throwaway database server.
#[async_trait]
pub trait Server: Send {
    /// The postmaster's process id, while it runs.
    fn pid(&self) -> Option<u32>;

    /// Crash it (every backend at once), keep it down for `down`, start it
    /// again on the same data.
    async fn crash_and_restart(&mut self, down: Duration) -> Result<(), String>;

    /// An HA cluster's planned switchover to another node (`drain`: the
    /// proxy takes the old leader out of rotation and cuts its sessions first).
    async fn switchover(&mut self, _drain: bool) -> Result<LeaderChange, String> {
        Err("a switchover needs --ha (a high-availability cluster)".into())
    }

    /// An HA cluster's failover: the leader's node killed, started again
    /// after `down` as a standby.
    async fn fail_leader(&mut self, _down: Duration) -> Result<LeaderChange, String> {
        Err("a failover needs --ha (a high-availability cluster)".into())
    }
}

/// A change of leader: what happened, and what writes through the write
/// endpoint saw while it went.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderChange {
    pub detail: String,
    pub writes: WriteOutage,
}

/// What an agent applies itself when told (it undoes it after `duration`).
#[derive(Clone, Debug, PartialEq)]
pub enum AgentAction {
    /// Add `delay` each way to its database traffic, through its relay.
    RelayLatency { delay: Duration, duration: Duration },
    /// Pass none of its database traffic, through its relay.
    RelayPartition { duration: Duration },
    /// Shut runtime `runtime` down, keep it down for `downtime`, start a
    /// fresh one; the agent reports back under `id`.
    RestartRuntime { runtime: u32, downtime: Duration, id: u32 },
    /// Shift its wall clock by `offset_us` for `duration` (until the run's
    /// release when zero); the agent reports back under `id`.
    ClockSkew { offset_us: i64, duration: Duration, id: u32 },
    /// Hand its runtimes to `binary` (another build) started as their
    /// successor; the agent reports back under `id`.
    UpgradeRuntimes { binary: std::path::PathBuf, id: u32 },
    /// Answer new database connections through its relay with an error of
    /// SQLSTATE `code` (every `every`-th, or a `share` of them) for
    /// `duration`; the agent reports back under `id`.
    RefuseConnect { code: String, every: u64, share: Option<f64>, duration: Duration, id: u32 },
}

/// Read a kind's fields into its own struct (`deny_unknown_fields` there
/// turns a stray field into an error naming it).
pub fn read_fields<T: serde::de::DeserializeOwned>(fields: toml::Table) -> Result<T, String> {
    T::deserialize(toml::Value::Table(fields)).map_err(|e| e.message().trim_end().to_string())
}

/// The agent `agent` must exist among the run's local agents (when they are
/// local; remote agents are counted only once they answer).
pub fn check_agent_index(name: &str, agent: u32, reach: &Reach) -> Result<(), String> {
    match reach.local_agents {
        Some(n) if agent >= n => {
            Err(format!("{name}: there is no agent {agent} (agents 0 to {})", n.saturating_sub(1)))
        }
        _ => Ok(()),
    }
}

/// The agent must be a local process this coordinator spawned.
pub fn check_local_agent(name: &str, agent: u32, reach: &Reach) -> Result<(), String> {
    if reach.local_agents.is_none() {
        return Err(format!("{name}: agent faults need --local agents (this coordinator cannot signal remote ones)"));
    }
    check_agent_index(name, agent, reach)
}

/// A duration as people read it.
pub(crate) fn fmt_duration(d: Duration) -> String {
    loadgen_common::units::format_duration(d)
}

/// The fault kinds as help text: one line each with its fields.
pub fn help_text() -> String {
    KINDS
        .iter()
        .map(|k| {
            let fields: Vec<&str> = k.fields.iter().map(|(f, _)| *f).collect();
            let lasting = match k.lasting {
                Lasting::Instant => "",
                Lasting::Required => ", duration",
                Lasting::Optional => ", duration (optional)",
            };
            let extra: String = fields.iter().map(|f| format!(", {f}")).collect();
            format!("{} (at{lasting}{extra}): {}", k.name, k.about)
        })
        .collect::<Vec<_>>()
        .join("\n")
}
