//! The result model: one [`RunReport`] per run (and a [`SweepReport`] per
//! sweep) that every renderer reads. The coordinator builds it after merging
//! the agents' intervals; nothing here knows how it will be shown.
//!
//! - [`run`]: the run, its agents, scenarios, audit, gates and database load;
//! - [`timeline`]: the per-second series and the database timeline;
//! - [`sweep`]: a capacity sweep's steps and verdict;
//! - [`live`]: the live view's snapshot.

pub mod live;
pub mod run;
pub mod sweep;
pub mod timeline;

pub use loadgen_common::histogram::LatencySummary;
pub use loadgen_common::tally::Counts;
pub use run::{
    AgentReport, Audit, Comparison, Contention, DbLoad, Environment, Gate, HistoryLatency, InstanceMismatch, LostAgent,
    MemorySample, MemorySummary, RunReport, ScenarioAudit, ScenarioReport, Section, SuiteReport, WorkloadReport,
};
pub use sweep::{SweepReport, SweepStep};
pub use timeline::{DbSample, IntervalLogs, SpectrumPoint, TimePoint, Timeline};
