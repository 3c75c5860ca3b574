//! Faults on a schedule: what to break, when and for how long, checked
//! before anything starts (the plan's [`crate::plan::faults`]), injected
//! during the run by the coordinator ([`inject`]), and judged afterwards
//! ([`impact`]): throughput
//! and p99 during each fault against the level before it, the recovery time,
//! and the per-instance audit as the verdict.
//!
//! The coordinator applies what it can reach: the run's database backends
//! (`terminate-backends`), the throwaway Postgres it started (`restart-db`,
//! `pause-db`) and the agent processes it spawned (`kill-agent`,
//! `freeze-agent`); the agents apply what travels through their relays
//! (`db-latency`, `db-partition`), told on their control streams. A schedule that asks for a fault it cannot apply (a
//! database fault against a user's database, an agent fault on remote
//! agents) is refused with the reason before the run.

pub mod impact;
pub mod inject;

pub use crate::plan::faults::{FaultKind, FaultSpec, Schedule};
