//! Runs end to end: the real coordinator and agents on a throwaway Postgres, closed and open loop, load stages, every scenario, agent discovery, agents' clock offsets, per-procedure statistics, completion tracking and hunting a race.
//!
//! One test binary per capability; each module below was a binary of its own.

#[path = "../support/mod.rs"]
mod support;

mod clocks;
mod completions;
mod discovery;
mod e2e;
mod hunt;
mod leases;
mod ledger;
mod open_loop;
mod procedures;
mod scenarios;
mod stages;
