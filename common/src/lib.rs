//! What the coordinator and the agents must agree on, so the two binaries
//! cannot drift apart, and nothing else:
//!
//! - [`proto`]: the generated gRPC code (the only module that includes it)
//!   and the protocol revision;
//! - [`wire`]: measurements to and from the wire (histograms encoded and
//!   decoded here only);
//! - [`tally`]: counts, latency histograms and per-scenario tallies;
//! - [`tracker`]: the batched completion query on duroxide-pg's tables;
//! - [`histogram`]: the latency histogram with its fixed bounds and exact merge;
//! - [`units`]: durations, rates and sizes as people type them;
//! - [`auth`]: the shared agent token (client and server interceptors);
//! - [`clock`]: libfaketime and the control file that shift an agent's wall clock;
//! - [`dburl`]: the parts of a database URL the tool needs (host, port, socket);
//! - [`conninfo`]: libpq's key=value connection strings, read into URLs;
//! - [`percent`]: percent-encoding, as URLs carry their parts;
//! - [`schema`]: run ids, schema names, instance ids and identifier validation;
//! - [`secret`]: masking of passwords and tokens in anything printed;
//! - [`process`]: the few process-level calls (signals, parent-death) that need `libc`;
//! - [`limits`]: the bounds a plan must keep, the same on both sides;
//! - [`load`]: the load (open or closed loop, constant or staged), cluster-wide and per agent;
//! - [`split`]: largest-remainder apportionment (the budget split and an agent's share);
//! - [`rand`]: a seeded splitmix64 generator for schedules and resamples;
//! - [`startup`]: logging set-up and the shutdown signal both binaries use.

pub mod auth;
pub mod clock;
pub mod conninfo;
pub mod dburl;
pub mod histogram;
pub mod http;
pub mod ledger;
pub mod limits;
pub mod load;
pub mod percent;
pub mod process;
pub mod proto;
pub mod rand;
pub mod schema;
pub mod secret;
pub mod split;
pub mod stages;
pub mod startup;
pub mod tally;
pub mod tracker;
pub mod units;
pub mod wire;

/// Version of this load generator (both binaries share it).
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// duroxide-pg version the workspace is pinned to (agents and coordinator
/// must agree: a runtime refuses a schema migrated by a newer provider).
pub const DUROXIDE_PG_VERSION: &str = "0.1.38";

#[cfg(test)]
mod tests {
    #[test]
    fn duroxide_pg_version_matches_the_lock_file() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).expect("Cargo.lock");
        let needle = format!("name = \"duroxide-pg\"\nversion = \"{}\"", super::DUROXIDE_PG_VERSION);
        assert!(lock.contains(&needle), "DUROXIDE_PG_VERSION is stale");
    }
}
