//! Runs from start to finish. [`run`] opens the session (database and
//! agents), carries out each run of the plan (one, or one per suite
//! combination) with [`run_once`] ([`once`]), and closes the session on
//! every path (success, error, Ctrl-C). A run's life, phase by phase:
//!
//! 1. begin: a fresh store ([`store`]: a schema, migrated once, or the
//!    agent's own store); the database's counters;
//! 2. prepare ([`crate::agents::calls`]): each agent gets its slice and must understand
//!    the workload exactly as the coordinator does;
//! 3. start and follow ([`stream`], [`live`]): every agent starts at one
//!    instant; intervals are folded as they stream in; lost agents noticed;
//! 4. settle ([`settle`]): a lost agent's orchestrations are finished by the
//!    others (bounded);
//! 5. release, audit ([`crate::db::audit`]) and assemble ([`assemble`]) the
//!    report with its gates.
//!
//! - [`session`]: what a coordinator brings up and must take down.

use std::time::Duration;

use loadgen_common::schema::new_run_id;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::CoordinatorError;
use crate::model::{IntervalLogs, RunReport};
use crate::notice::Observer;
use crate::plan::{Profile, RunPlan};

pub mod abort;
pub mod assemble;
pub mod completions;
pub mod evidence;
pub mod executor;
pub mod host;
pub mod live;
pub mod once;
pub mod session;
pub mod settle;
pub mod store;
pub mod stream;

pub(crate) use once::run_once;

use session::Session;

/// Delay between sending Run to every agent and the common start instant.
const START_DELAY: Duration = Duration::from_millis(500);
/// Slack on top of duration + drain timeout before the run is declared hung.
const RUN_SLACK: Duration = Duration::from_secs(30);

/// What the runs of one invocation produced.
#[derive(Debug)]
pub struct Outcome {
    /// The resolved profile (a suite keeps its combination list here).
    pub profile: Profile,
    /// One report per run, in order.
    pub runs: Vec<RunReport>,
    /// Interval histograms per run, when .hlog files were asked for.
    pub logs: Vec<IntervalLogs>,
}

impl Outcome {
    /// True when the profile is a suite (several runs compared).
    pub fn is_suite(&self) -> bool {
        !self.profile.suite.is_empty()
    }

    /// True when every run passed its gates.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(|r| r.passed)
    }
}

/// Carry out the runs `plan` describes. Returns their reports (gates
/// included) or why they could not be carried out. Cancelling `shutdown`
/// interrupts; everything brought up is taken down on every path.
pub async fn run(plan: &RunPlan, obs: &dyn Observer, shutdown: CancellationToken) -> Result<Outcome, CoordinatorError> {
    let one = [Session::default()];
    let (runs, logs) =
        executor::with_sessions(one, obs, shutdown, async |[s]: &mut [Session; 1]| execute(plan, s, obs).await).await?;
    Ok(Outcome { profile: plan.profile.clone(), runs, logs })
}

async fn execute(
    plan: &RunPlan,
    session: &mut Session,
    obs: &dyn Observer,
) -> Result<(Vec<RunReport>, Vec<IntervalLogs>), CoordinatorError> {
    session.open(plan, &plan.profile, obs).await?;
    let mut reports = Vec::with_capacity(plan.runs.len());
    let mut logs = Vec::new();
    for (i, profile) in plan.runs.iter().enumerate() {
        let label = if plan.runs.len() > 1 {
            format!("suite run, dispatchers {}", profile.dispatchers())
        } else {
            String::new()
        };
        let run_id = new_run_id();
        let span = tracing::info_span!("run", run = %run_id);
        let (report, log) =
            run_once(session, plan, profile, &run_id, (i + 1, plan.runs.len(), &label), obs).instrument(span).await?;
        session.end_run(obs).await;
        reports.push(report);
        logs.extend(log);
    }
    Ok((reports, logs))
}

/// How a run describes its load for people: the load's one phrase (the
/// same the summary uses), each agent's slice, the length.
fn announce_load(p: &crate::plan::ProfilePlan, slices: &[crate::plan::AgentSlice]) -> String {
    let split = slices.iter().map(|s| s.in_flight().to_string()).collect::<Vec<_>>().join("+");
    format!("{} ({split}), {} of load", p.load_phrase, loadgen_common::units::format_duration(p.duration))
}

/// Each agent's share of the load: its rate (open loop) or its in-flight
/// slice (closed loop) over the cluster's.
fn load_shares(slices: &[crate::plan::AgentSlice]) -> Vec<f64> {
    let each: Vec<f64> =
        slices.iter().map(|s| if s.load.is_open() { s.load.peak() } else { s.in_flight() as f64 }).collect();
    let total: f64 = each.iter().sum();
    each.iter().map(|x| if total > 0.0 { x / total } else { 0.0 }).collect()
}
