//! Shared library of the duroxide-pg load generator.
//!
//! Everything the coordinator and the agents must agree on lives here, so that
//! the two binaries cannot drift apart:
//!
//! - [`auth`]: the shared agent token (client and server interceptors);
//! - [`proto`]: the generated gRPC code (the only module that includes it) and
//!   the protocol version;
//! - [`config`]: run configuration, named profiles (TOML data) and duration parsing;
//! - [`dburl`]: the parts of a database URL the tool needs (host, port, socket);
//! - [`histogram`]: the latency histogram with its fixed bounds, wire codec and exact merge;
//! - [`apportion`]: largest-remainder splitting of a cluster-wide budget;
//! - [`result`]: the result model (counts, latency summaries, per-agent and merged results);
//! - [`schema`]: run ids, schema names and identifier validation;
//! - [`secret`]: masking of passwords in database URLs;
//! - [`embedded_pg`]: the throwaway Postgres started from the installed server binaries;
//! - [`process`]: the few process-level calls (signals, parent-death) that need `libc`;
//! - [`startup`]: logging set-up and the shutdown signal both binaries use;
//! - [`stress_factory`]: `PostgresStressFactory`, duroxide's own stress module on the same setup.

pub mod apportion;
pub mod auth;
pub mod config;
pub mod dburl;
pub mod embedded_pg;
pub mod histogram;
pub mod process;
pub mod proto;
pub mod result;
pub mod schema;
pub mod secret;
pub mod startup;
pub mod stress_factory;

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
