//! Applying a fault schedule during a run, and judging it afterwards: each
//! fault at its time, undone after its duration, with the exact times it
//! began and ended ([`run`]), over what the run can reach ([`targets`]);
//! then what each did to throughput, latency and failures ([`impact`]).
//!
//! The kinds themselves (what each breaks and how) are [`crate::faults`];
//! nothing here names one.

use std::time::Instant;

use crate::faults::{Apply, Failure, Schedule};
use crate::model::FaultEvent;
use crate::notice::{Notice, Observer};

pub mod impact;
pub mod targets;

pub use targets::RunTargets;

/// Run `schedule` from the common start instant `started`; returns what
/// happened, fault by fault.
pub async fn run(schedule: &Schedule, started: Instant, mut t: RunTargets<'_>, obs: &dyn Observer) -> Vec<FaultEvent> {
    let mut events = Vec::with_capacity(schedule.faults.len());
    for (id, f) in schedule.faults.iter().enumerate() {
        tokio::time::sleep_until(tokio::time::Instant::from_std(started + f.at())).await;
        let at_s = started.elapsed().as_secs_f64();
        let kind = f.kind();
        let target = f.target();
        obs.notice(&Notice::FaultBegan { kind, target: &target, at_s });
        let mut writes = None;
        let cx = Apply {
            id: u32::try_from(id).unwrap_or(u32::MAX),
            length: f.length(),
            targets: &mut t,
            writes: &mut writes,
        };
        let result = f.fault.apply(cx).await;
        // An agent killed for good takes its share of the load with it:
        // recovery is judged against what the others offer.
        let load_kept = f.fault.agent_loss().filter(|l| l.permanent && result.is_ok()).map(|l| {
            let gone = t.load_shares.get(l.agent as usize).copied().unwrap_or(0.0);
            (1.0 - gone).max(0.0)
        });
        let end_s = started.elapsed().as_secs_f64();
        let stuck = matches!(result, Err(Failure::NotUndone(_)));
        let (detail, error) = match result {
            Ok(d) => (d, None),
            Err(Failure::NotApplied(e)) => {
                obs.notice(&Notice::Warning(format!("fault {kind} failed: {e}")));
                (String::new(), Some(e))
            }
            Err(Failure::NotUndone(e)) => {
                let e = format!("{e}; the run was stopped (the fault could not be undone)");
                obs.notice(&Notice::Warning(format!("fault {kind} could not be undone: stopping the run ({e})")));
                (String::new(), Some(e))
            }
        };
        obs.notice(&Notice::FaultEnded { kind, at_s, end_s, failed: error.is_some() });
        tracing::info!(kind, at_s, end_s, detail, "fault applied");
        events.push(FaultEvent { kind: kind.into(), target, at_s, end_s, detail, error, load_kept, writes });
        if stuck {
            // Load against a broken system measures nothing: every agent
            // stops starting and drains; the faults gate fails with the reason.
            t.stop_all(&format!("fault {kind} could not be undone"));
            break;
        }
    }
    events
}
