//! What the coordinator asked this agent to do, as domain types: the
//! workload, the runtimes, the load model and its bounds. Built from the
//! wire by [`crate::wire`] (which refuses bad values); nothing below the
//! service layer sees a protobuf type.

use std::time::Duration;

pub use loadgen_common::load::{Arrival, Load, Loop};

use crate::scenario::Options;

/// One run, as this agent must carry it out.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub run_id: String,
    pub schema: String,
    pub agent_index: u32,
    pub agent_count: u32,
    pub workload: WorkloadSpec,
    pub runtime: RuntimeSpec,
    /// This agent's share of the run's load.
    pub load: Load,
    /// Open loop: where this agent's constant-arrival starts fall between
    /// the cluster's, and the seed of its Poisson gaps.
    pub spread: Spread,
    /// How long new orchestrations are started.
    pub duration: Duration,
    /// How long in-flight orchestrations may take to finish after the deadline.
    pub drain_timeout: Duration,
    /// Who learns completions.
    pub tracking: Tracking,
    /// Interval of this agent's batched completion query (agent tracking).
    pub completion_poll: Duration,
    /// Artificial one-way delay to the database (zero: none).
    pub db_latency: Duration,
    /// Route the providers through the relay even without a delay (relay faults).
    pub relay: bool,
    /// Apply this build's migrations to the schema (not only verify them).
    pub migrate: bool,
    /// Where the runtimes keep their state.
    pub store: Store,
    /// Stop starting after this many orchestrations.
    pub iterations: Option<u64>,
}

/// Where the runtimes keep their state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// duroxide-pg on the run's schema in the agent's database.
    Postgres,
    /// duroxide's SQLite provider in this process's memory.
    SqliteMemory,
    /// duroxide's SQLite provider on this file.
    SqliteFile(std::path::PathBuf),
}

/// Who learns which instances reached a terminal status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// This agent queries for its own instances every `completion_poll`:
    /// the generator's query rate grows with the number of agents.
    Agent,
    /// The coordinator queries once per tick for every agent's instances and
    /// sends each agent its terminal ones; this agent reports what it started.
    Cluster,
}

/// The scenario and its options as given (the scenario checks them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub scenario: String,
    pub options: Options,
    pub seed: u64,
}

/// The duroxide runtimes of this agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSpec {
    pub runtimes: u32,
    pub orchestration_concurrency: u32,
    pub worker_concurrency: u32,
    pub poll_interval: Duration,
    /// `None` keeps duroxide's default.
    pub orchestrator_lock_timeout: Option<Duration>,
    pub worker_lock_timeout: Option<Duration>,
}

/// Where an open loop's starts of this agent fall among the cluster's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    /// Constant arrivals: this agent's offset in [0, 1) of one gap (see
    /// [`loadgen_common::stages::Arrivals::new`]).
    pub phase: f64,
    /// Seed of the gaps' random numbers (Poisson arrivals).
    pub seed: u64,
}
