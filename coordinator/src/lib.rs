//! The coordinator of the duroxide-pg load generator.
//!
//! It prepares one shared schema, splits the cluster-wide budget over the
//! agents, starts them at one instant, follows their progress, merges their
//! HDR histograms exactly, audits every instance in the database, and
//! evaluates the gates. From the top down:
//!
//! - [`command`]: each subcommand from parsed flags to exit code;
//! - [`cli`]: the command line, resolved into plans ([`cli::resolve`]);
//! - [`report`]: the output pipeline (renderers, console progress);
//! - [`track`]: results over time and regression checks;
//! - [`sweep`], [`bench`], [`ab`], [`compare`], [`hunt`]: multi-run commands built on [`run`];
//! - [`run`]: a run's life, phase by phase (session, prepare, stream, settle, assemble);
//! - [`agents`]: reaching, discovering and spawning agents;
//! - [`builds`]: agent binaries of a duroxide-pg release or checkout, built on demand;
//! - [`db`]: the database under test (schema, timeline, audit, throwaway Postgres);
//! - [`injector`]: a fault schedule applied during a run and judged after it;
//! - [`gates`]: the must-pass gates;
//! - [`plan`]: the resolved plan (profile, workload, slices, outputs);
//! - [`faults`]: the fault kinds (one file each, a registry) and the schedule;
//! - [`model`]: the result model every renderer reads;
//! - [`notice`]: what happens during a run, for an observer to show;
//! - [`error`]: errors and exit codes.

pub mod ab;
pub mod agents;
pub mod bench;
pub mod builds;
pub mod cli;
pub mod command;
pub mod compare;
pub mod db;
pub mod error;
pub mod exporter;
pub mod faults;
pub mod gates;
pub mod hunt;
pub mod injector;
pub mod matrix;
pub mod model;
pub mod notice;
pub mod plan;
pub mod report;
pub mod run;
pub mod sweep;
pub mod track;

pub use cli::{Args, Cli, Command};
pub use error::CoordinatorError;
