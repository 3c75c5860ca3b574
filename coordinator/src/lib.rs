//! The coordinator of the duroxide-pg load generator.
//!
//! It prepares one shared schema, splits the cluster-wide budget over the
//! agents, starts them at one instant, follows their progress, merges their
//! HDR histograms exactly, checks the database, and evaluates the gates.
//!
//! - [`cli`]: the command line;
//! - [`run`](mod@run): the runs of one invocation (one, or a suite);
//! - [`session`]: the database and agents a coordinator brings up and takes down;
//! - [`stream`]: the Run streams: start, heartbeats, progress, agent loss;
//! - [`track`]: tracked results over time and regression checks;
//! - [`agents`]: reaching and checking agents;
//! - [`audit`]: the correctness audit of a run's schema;
//! - [`bench`](mod@bench): duroxide's own stress module and this tool side by side;
//! - [`local`]: `--local N` agent processes;
//! - [`db`]: schema creation, database counters, the run's database check;
//! - [`dbwatch`]: the database timeline sampled once a second;
//! - [`live`]: the once-a-second progress line;
//! - [`gates`]: the must-pass gates;
//! - [`hlog`]: HdrHistogram interval logs;
//! - [`report`]: text and JSON renderers of the result;
//! - [`html`]: the self-contained HTML report of a run and of a sweep;
//! - [`svg`]: the inline SVG line charts of the HTML report;
//! - [`sweep`]: the capacity sweep (knee, Little's law, recommendation);
//! - [`error`]: errors and exit codes.

pub mod agents;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod db;
pub mod dbwatch;
pub mod error;
pub mod gates;
pub mod hlog;
pub mod html;
pub mod live;
pub mod local;
pub mod report;
pub mod run;
pub mod session;
pub mod stream;
pub mod svg;
pub mod sweep;
pub mod track;

pub use cli::{Args, Cli, Command};
pub use error::CoordinatorError;
pub use run::run;
