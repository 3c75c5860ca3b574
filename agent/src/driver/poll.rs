//! Learning completions: one batched query per tick for every instance in
//! flight (never one query per instance), run as its own task so a slow
//! database never delays progress messages, or the coordinator's answers
//! (cluster tracking); and each terminal instance held to what its scenario
//! designed (expected failures counted apart).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{Driver, Flight};
use crate::scenario::Outcome;
use crate::scenario::expect::category_of;
use crate::tracker::{Finished, Terminal};

/// What a completion query found, and when the answer arrived.
pub type Polled = Result<(Vec<Finished>, Instant), String>;

/// End-to-end latency from the database's completion time, clamped to
/// `[0, seen]`: the runtime may run on another machine whose clock is off.
/// Returns the latency and whether it had to be clamped.
pub fn end_to_end(
    issued: SystemTime,
    completed_at: Option<chrono::DateTime<chrono::Utc>>,
    seen: Duration,
) -> (Duration, bool) {
    let Some(done) = completed_at else { return (seen, true) };
    let issued: chrono::DateTime<chrono::Utc> = issued.into();
    match (done - issued).to_std() {
        Ok(d) if d <= seen => (d, false),
        Ok(_) => (seen, true),
        // The runtime stores milliseconds: a completion in the same
        // millisecond as the start call can read as slightly negative.
        Err(_) if (issued - done) < chrono::TimeDelta::milliseconds(1) => (Duration::ZERO, false),
        Err(_) => (Duration::ZERO, true),
    }
}

/// How a terminal instance compares with its scenario's design.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Completed as designed.
    Completed,
    /// Completed where a failure was designed.
    CompletedUnexpectedly,
    /// Failed as designed (counted as an expected failure).
    FailedAsDesigned,
    /// Failed, and no such failure was designed.
    FailedUnexpectedly,
}

/// Hold a terminal state to the designed outcome.
pub fn judge(outcome: &Outcome, state: &Terminal) -> Verdict {
    match (outcome, state) {
        (Outcome::Failed { .. }, Terminal::Completed) => Verdict::CompletedUnexpectedly,
        (_, Terminal::Completed) => Verdict::Completed,
        (Outcome::Failed { category, message }, Terminal::Failed { output }) => {
            if category_of(output) == *category && message.holds_text(output) {
                Verdict::FailedAsDesigned
            } else {
                Verdict::FailedUnexpectedly
            }
        }
        (Outcome::CompletedOrCancelled(_), Terminal::Failed { output }) if output.starts_with("canceled:") => {
            Verdict::FailedAsDesigned
        }
        (_, Terminal::Failed { .. }) => Verdict::FailedUnexpectedly,
    }
}

impl<S> Driver<S> {
    /// Start a completion query unless one is under way.
    pub(super) fn start_poll(&mut self) {
        if self.poll_pending || self.in_flight.is_empty() {
            return;
        }
        self.poll_pending = true;
        let ids: Vec<String> = self.in_flight.keys().cloned().collect();
        let (tracking, tx) = (self.deps.tracking.clone(), self.poll_tx.clone());
        tokio::spawn(async move {
            let result = tracking.poll(&ids).await.map(|rows| (rows, Instant::now()));
            // The driver may be gone (run ended); nothing to report then.
            let _ = tx.send(result);
        });
    }

    pub(super) fn on_poll(&mut self, polled: Polled) {
        self.poll_pending = false;
        let (rows, observed) = match polled {
            Ok(ok) => ok,
            Err(e) => {
                self.tallies.status_query(true);
                tracing::warn!(error = %e, "completion query failed; retrying next tick");
                return;
            }
        };
        self.tallies.status_query(false);
        self.on_finished(rows, observed);
    }

    /// Account for instances found terminal (by this agent's query or the
    /// coordinator's), learned of at `observed`.
    pub(super) fn on_finished(&mut self, rows: Vec<Finished>, observed: Instant) {
        for Finished { instance_id: id, state, completed_at, .. } in rows {
            let Some(Flight { scenario, outcome, issued, intended, timed }) = self.in_flight.remove(&id) else {
                continue;
            };
            let seen = observed.saturating_duration_since(issued.at);
            let (e2e, clamped) = end_to_end(issued.wall, completed_at, seen);
            // Open loop: the same, from when the start was due.
            let from_due =
                intended.map(|due| end_to_end(due.wall, completed_at, observed.saturating_duration_since(due.at)).0);
            if timed {
                let t = self.tallies.of(scenario);
                t.hist.e2e.record(e2e);
                t.hist.observed.record(seen);
                if !clamped {
                    t.hist.observation.record(seen.saturating_sub(e2e));
                }
                if let Some(d) = from_due {
                    t.hist.intended.record(d);
                }
            }
            if timed && clamped {
                self.tallies.count(scenario, 1, |c| &mut c.latency_clamped);
            }
            let verdict = judge(&outcome, &state);
            match &state {
                Terminal::Completed => self.tallies.count(scenario, 1, |c| &mut c.completed),
                Terminal::Failed { output } => {
                    let field: fn(&mut loadgen_common::tally::Counts) -> &mut u64 = match category_of(output) {
                        "infrastructure" => |c| &mut c.failed_infrastructure,
                        "configuration" => |c| &mut c.failed_configuration,
                        "poison" => |c| &mut c.failed_poison,
                        _ => |c| &mut c.failed_application,
                    };
                    self.tallies.count(scenario, 1, field);
                }
            }
            match verdict {
                Verdict::FailedAsDesigned => self.tallies.count(scenario, 1, |c| &mut c.expected_failures),
                Verdict::CompletedUnexpectedly => {
                    self.tallies.count(scenario, 1, |c| &mut c.unexpected_outcomes);
                    self.log_unexpected(&id, "completed where the scenario designed a failure");
                }
                Verdict::FailedUnexpectedly => {
                    if let Terminal::Failed { output } = &state {
                        self.log_unexpected(&id, output);
                    }
                }
                Verdict::Completed => {}
            }
        }
    }

    fn log_unexpected(&mut self, id: &str, what: &str) {
        if self.failures_logged < 10 {
            self.failures_logged += 1;
            tracing::warn!(instance = %id, error = %what, "orchestration ended unexpectedly");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Output;

    #[test]
    fn end_to_end_uses_the_database_time_within_bounds() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |ms: i64| Some(chrono::DateTime::<chrono::Utc>::from(issued) + chrono::TimeDelta::milliseconds(ms));
        let seen = Duration::from_millis(300);
        assert_eq!(end_to_end(issued, at(120), seen), (Duration::from_millis(120), false));
        assert_eq!(end_to_end(issued, at(300), seen), (seen, false));
        // Completion "after" we saw it: the runtime's clock runs ahead.
        assert_eq!(end_to_end(issued, at(450), seen), (seen, true));
        // Completion before the start call: the runtime's clock runs behind.
        assert_eq!(end_to_end(issued, at(-40), seen), (Duration::ZERO, true));
        assert_eq!(end_to_end(issued, None, seen), (seen, true));
    }

    #[test]
    fn terminal_states_are_judged_against_the_design() {
        let completed = Outcome::Completed(Output::Any);
        let designed = Outcome::Failed { category: "application", message: Output::Prefix("expected".into()) };
        let raced = Outcome::CompletedOrCancelled(Output::Any);
        let failed = |m: &str| Terminal::Failed { output: m.into() };
        assert_eq!(judge(&completed, &Terminal::Completed), Verdict::Completed);
        assert_eq!(judge(&completed, &failed("boom")), Verdict::FailedUnexpectedly);
        assert_eq!(judge(&designed, &failed("expected failure 3")), Verdict::FailedAsDesigned);
        assert_eq!(judge(&designed, &failed("infrastructure:ack: lost")), Verdict::FailedUnexpectedly);
        assert_eq!(judge(&designed, &Terminal::Completed), Verdict::CompletedUnexpectedly);
        assert_eq!(judge(&raced, &failed("canceled: by the driver")), Verdict::FailedAsDesigned);
        assert_eq!(judge(&raced, &Terminal::Completed), Verdict::Completed);
        assert_eq!(judge(&raced, &failed("poison: x")), Verdict::FailedUnexpectedly);
    }
}
