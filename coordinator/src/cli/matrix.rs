//! The plan of `coordinator matrix`: the run every cell shares (the mixed
//! workload for 12 s unless the flags say otherwise, no faults of its own),
//! the rows, the build columns (made later, once the plan is checked) and
//! the verdicts `--expect` knows.

use std::time::Duration;

use crate::matrix::{Build, MatrixPlan, plan};
use crate::plan::{AgentSource, PlanError};

use super::Args;
use super::resolve::{agents, plan_for, profile_or, refuse_faults};

/// A matrix cell's run, when `--duration` does not say: the fault at 3 s for
/// 4 s, then time to see the recovery.
const DEFAULT_DURATION: Duration = Duration::from_secs(12);
/// How long a cell's run waits for its last instances, when `--drain-timeout`
/// does not say: past duroxide's worker lock timeout (30 s), so work a fault
/// left locked is redelivered; what is still not terminal then is stuck (a
/// parent waiting on a child that never answers waits forever).
const DEFAULT_DRAIN: Duration = Duration::from_secs(35);

pub fn matrix_plan(m: &super::MatrixArgs, args: &Args) -> Result<MatrixPlan, PlanError> {
    let invalid = |s: &str| Err(PlanError::Invalid(s.to_string()));
    if args.suite.is_some() || args.track || args.track_cloud {
        return invalid("matrix runs one fault per run: drop --suite and --track");
    }
    if args.provider.in_agent() {
        return invalid(
            "matrix breaks a Postgres provider: drop --provider (SQLite has no server to answer with errors)",
        );
    }
    if args.build.is_some() {
        return invalid("matrix names its builds with --builds: drop --build");
    }
    if !m.builds.is_empty() && !args.agents.is_empty() {
        return invalid("--builds runs local agents of each build: drop --agents (use --local N for more than one)");
    }
    if m.every == 0 {
        return invalid("--every must be at least 1");
    }
    if m.fault_for.is_zero() {
        return invalid("--fault-for must be positive");
    }
    let mut profile = profile_or(args, Some("mixed"))?;
    if args.faults.is_some() {
        return invalid("matrix sets one fault per run: drop --faults");
    }
    refuse_faults(args, &profile, "matrix runs its own faults, so its profile runs")?;
    if args.duration.is_none() {
        profile.duration = DEFAULT_DURATION;
    }
    if args.drain_timeout.is_none() {
        profile.drain_timeout = DEFAULT_DRAIN;
    }
    let agents = agents(args)?;
    let local_agents = match &agents {
        AgentSource::Local { count, .. } => Some(*count),
        AgentSource::Remote { .. } => None,
    };
    let run = plan_for(args, profile, agents)?;
    let reach = crate::faults::Reach {
        embedded_db: args.database_url.is_none(),
        local_agents,
        duration: run.profile.duration,
        ha: false,
    };
    let spec = plan::RowsSpec {
        codes: m.codes.clone(),
        procedures: m.procedures.clone(),
        every: m.every,
        timing: m.timing.clone(),
        at: m.fault_at,
        length: m.fault_for,
    };
    let rows = plan::rows(&spec, &reach).map_err(PlanError::Invalid)?;
    let builds = builds(&m.builds)?;
    let labels: Vec<String> = builds.iter().map(|b| b.label.clone()).collect();
    let expect = match &m.expect {
        None => plan::Expect::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PlanError::Invalid(format!("cannot read --expect {}: {e}", path.display())))?;
            plan::Expect::parse(&text, &path.display().to_string(), &rows, &labels).map_err(PlanError::Invalid)?
        }
    };
    Ok(MatrixPlan { run, rows, builds, expect })
}

/// The columns: each `--builds` entry (made later), or this tool's own build.
fn builds(given: &[String]) -> Result<Vec<Build>, PlanError> {
    if given.is_empty() {
        let own = loadgen_common::DUROXIDE_PG_VERSION.to_string();
        return Ok(vec![Build { label: own, bin: None, release: None }]);
    }
    let mut out: Vec<Build> = Vec::new();
    for b in given {
        let b = b.trim();
        if b.is_empty() {
            return Err(PlanError::Invalid("--builds has an empty entry".into()));
        }
        if out.iter().any(|o| o.label == b) {
            return Err(PlanError::Invalid(format!("--builds names {b} twice")));
        }
        let release = crate::builds::is_release(b).then(|| b.to_string());
        out.push(Build { label: b.to_string(), bin: None, release });
    }
    Ok(out)
}
