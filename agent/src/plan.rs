//! What the coordinator asked this agent to do, as domain types: the
//! workload, the runtimes, the load model and its bounds. Built from the
//! wire by [`crate::wire`] (which refuses bad values); nothing below the
//! service layer sees a protobuf type.

use std::time::Duration;

use loadgen_common::stages::{Arrivals, StagePlan};

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
    pub load: Load,
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

/// How starts are paced.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// Keep this many orchestrations in flight, or with `stages`, this
    /// agent's share of the cluster-wide target of the moment.
    Closed { concurrency: u64, stages: Option<StagePlan> },
    /// Start on a schedule.
    Open(OpenLoop),
}

/// An open-loop schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenLoop {
    /// This agent's starts per second over time.
    pub plan: StagePlan,
    pub arrival: Arrival,
    /// Constant arrivals: where this agent's starts fall between the
    /// cluster's (see [`Arrivals::new`]).
    pub phase: f64,
    /// Seed of the gaps' random numbers.
    pub seed: u64,
    /// Starts due while this many are in flight are dropped.
    pub max_in_flight: u64,
}

impl OpenLoop {
    /// The due times of this agent's starts.
    pub fn arrivals(&self) -> Arrivals {
        Arrivals::new(self.plan.clone(), self.arrival == Arrival::Poisson, self.phase, self.seed)
    }
}

/// Spacing of open-loop starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly spaced at the rate of the moment.
    Constant,
    /// Independent arrivals at the rate of the moment (Poisson).
    Poisson,
}
