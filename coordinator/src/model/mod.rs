//! The result model: one [`RunReport`] per run (and a [`SweepReport`] per
//! sweep) that every renderer reads. The coordinator builds it after merging
//! the agents' intervals; nothing here knows how it will be shown.
//!
//! - [`run`]: the run, its scenarios, gates and database load;
//! - [`agent`]: an agent's part of a run (figures, memory, clock, loss);
//! - [`section`]: the figures of an agent, a scenario or the merged run;
//! - [`audit`]: the per-instance audit's result;
//! - [`ab`]: an A/B comparison of two builds;
//! - [`compare`]: a comparison of providers;
//! - [`timeline`]: the per-second series and the database timeline;
//! - [`procedures`]: the database's time by stored procedure and statement;
//! - [`sweep`]: a capacity sweep's steps and verdict;
//! - [`live`]: the live view's snapshot.

pub mod ab;
pub mod agent;
pub mod audit;
pub mod compare;
pub mod figures;
pub mod ledger;
pub mod live;
pub mod matrix;
pub mod procedures;
pub mod run;
pub mod section;
pub mod sweep;
pub mod timeline;

pub use audit::{Audit, InstanceMismatch, ScenarioAudit};
pub use figures::RunFigures;
pub use loadgen_common::histogram::LatencySummary;
pub use loadgen_common::tally::Counts;
pub use run::{
    Aborted, AgentReport, ClockRange, ClockReading, Comparison, Contention, CoordinatorCost, DbLoad, Environment, Gate,
    HistoryLatency, LostAgent, MemorySample, MemorySummary, RunReport, ScenarioReport, Section, SuiteReport,
    WorkloadReport,
};
pub use sweep::{SweepReport, SweepStep};
pub use timeline::{
    DbSample, Failures, FaultEvent, FaultReport, FetchSample, IntervalLogs, SpectrumPoint, StageRow, StagesReport,
    TimePoint, Timeline, WriteOutage,
};
