//! Shared library of the duroxide-pg load generator.
//!
//! Everything the coordinator and the agents must agree on lives here, so that
//! the two binaries cannot drift apart:
//!
//! - [`proto`]: the generated gRPC code (the only module that includes it) and
//!   the protocol version;
//! - [`config`]: run configuration, named profiles (TOML data) and duration parsing;
//! - [`histogram`]: the latency histogram with its fixed bounds, wire codec and exact merge;
//! - [`apportion`]: largest-remainder splitting of a cluster-wide budget;
//! - [`result`]: the result model (counts, latency summaries, per-agent and merged results);
//! - [`schema`]: run ids, schema names and identifier validation;
//! - [`secret`]: masking of passwords in database URLs;
//! - [`embedded_pg`]: the throwaway Postgres started from the installed server binaries;
//! - [`process`]: the few process-level calls (signals, parent-death) that need `libc`.

pub mod apportion;
pub mod config;
pub mod embedded_pg;
pub mod histogram;
pub mod process;
pub mod proto;
pub mod result;
pub mod schema;
pub mod secret;

/// Version of this load generator (both binaries share it).
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
