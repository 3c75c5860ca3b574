//! Faults: a schedule of every kind applied, judged and survived, and real processes lost (agents, the coordinator, the database).
//!
//! One test binary per capability; each module below was a binary of its own.

#[path = "../support/mod.rs"]
mod support;

mod errors;
mod processes;
mod schedule;
