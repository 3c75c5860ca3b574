//! What the end of a run holds the database to beyond the audit's own
//! reads: the messages the sampler saw handed out many times, the instances
//! the tracker saw end, the failed work by fault, and the activity ledger
//! the agents kept outside the database.

use loadgen_common::ledger::Ledger;

use crate::agents::calls::Released;
use crate::db::RunDb;
use crate::db::audit::{self, AuditOutcome};
use crate::error::CoordinatorError;
use crate::model::{FaultReport, LostAgent};

/// What the run gathered for these checks.
pub struct Gathered {
    pub redelivered: Vec<crate::model::audit::Redelivered>,
    /// The run's schema notes leases handed out expired (its triggers were added).
    pub leases_watched: bool,
    pub seen_ended: Option<Vec<audit::acknowledged::Seen>>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub ledger: Ledger,
}

/// The ledger from the reports and the releases, with what it may lack:
/// `counted` is the activity executions the agents counted (late ones too),
/// which a whole ledger holds line for line.
pub fn ledger_of(
    mut ledger: Ledger,
    released: Vec<Released>,
    finished: &[usize],
    lost: &[LostAgent],
    counted: u64,
) -> Ledger {
    for (i, r) in released.into_iter().enumerate() {
        if finished.contains(&i) && !r.answered {
            ledger.incomplete(format!("agent {i} did not answer its release"));
        }
        ledger.add_reported(i as u32, r.runs, r.dropped);
    }
    for l in lost {
        ledger.incomplete(format!("agent {} was lost", l.index));
    }
    if ledger.executions != counted && ledger.incomplete.is_empty() {
        ledger.incomplete(format!(
            "the agents counted {counted} activity executions and their ledgers hold {} (an agent of an older build keeps none)",
            ledger.executions
        ));
    }
    ledger
}

/// Hold the database to what the run gathered; failures go into `faults`.
pub async fn check(
    db: &RunDb,
    run_id: &str,
    g: Gathered,
    faults: &mut [FaultReport],
    outcome: &mut AuditOutcome,
) -> Result<(), CoordinatorError> {
    let mut seen = g.redelivered;
    audit::livelock::settle(db, &mut seen).await?;
    audit::livelock::record(&mut outcome.audit, seen);
    if g.leases_watched {
        let found = crate::db::leases::read(db, g.started_at.timestamp_millis()).await?;
        crate::db::leases::record(&mut outcome.audit, found);
    }
    if let Some(ended) = g.seen_ended {
        let lost = audit::acknowledged::check(db, &ended).await?;
        audit::acknowledged::record(&mut outcome.audit, ended.len() as u64, lost);
    }
    if !faults.is_empty() {
        let failures = audit::errors::read(db, g.started_at).await?;
        audit::errors::attribute(faults, &failures);
    }
    let prefix = format!("{run_id}-");
    let history = audit::ledger::read(db, &format!("{prefix}%")).await?;
    audit::ledger::record(&mut outcome.audit, audit::ledger::compare(&g.ledger, &history, &prefix));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_common::ledger::ActivityRun;

    fn released(runs: usize, answered: bool) -> Released {
        Released {
            answered,
            late_activities: runs as u64,
            runs: (0..runs)
                .map(|i| ActivityRun { instance: format!("r-0-{i}"), ok: true, ..Default::default() })
                .collect(),
            dropped: 0,
        }
    }

    #[test]
    fn a_ledger_is_whole_only_when_it_holds_every_counted_execution() {
        let l = ledger_of(Ledger::default(), vec![released(2, true), released(1, true)], &[0, 1], &[], 3);
        assert_eq!((l.executions, l.incomplete.len()), (3, 0));
        let l = ledger_of(Ledger::default(), vec![released(2, true)], &[0], &[], 5);
        assert!(
            l.incomplete[0].starts_with("the agents counted 5 activity executions and their ledgers hold 2"),
            "{:?}",
            l.incomplete
        );
        let l = ledger_of(Ledger::default(), vec![released(0, false)], &[0], &[], 0);
        assert_eq!(l.incomplete, ["agent 0 did not answer its release"]);
        let lost = LostAgent { index: 1, ..Default::default() };
        let l = ledger_of(Ledger::default(), vec![released(1, true), released(0, false)], &[0], &[lost], 4);
        assert_eq!(l.incomplete, ["agent 1 was lost"]);
    }
}
