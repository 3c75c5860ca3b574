//! The driver's life: [`drive`] waits for the common start, builds the
//! [`Driver`], runs its one loop (every timer and channel in one `select!`,
//! each branch a method of the driver) until it has drained, and wraps up
//! (what is left counted as unfinished, the last interval, the finish).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loadgen_common::tally::Finish;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Deps, Driver, Feed, PROGRESS_EVERY, RunOutcome, STAGE_TICK, Sink, launch, poll};
use crate::lease::Lease;
use crate::plan::{RunSpec, Tracking};
use loadgen_common::stages::Arrivals;

use super::tallies::Tallies;

/// Run the plan: wait `start_delay`, drive load, drain, and hand intervals
/// and the finish to `sink`. Cancelling `cancel` stops it early (what is in
/// flight then is reported as unfinished).
pub async fn drive<S: Sink>(
    plan: RunSpec,
    deps: Deps,
    start_delay: Duration,
    (sink, feed): (S, Feed),
    cancel: CancellationToken,
    lease: Lease,
) -> RunOutcome {
    tokio::select! {
        _ = tokio::time::sleep(start_delay) => {}
        _ = cancel.cancelled() => return RunOutcome::default(),
        _ = lease.lost.cancelled() => return RunOutcome::default(),
    }
    let (mut d, inbox) = Driver::new(plan, deps, sink);
    let errors_before = d.errors_before.clone();
    tracing::info!(load = ?d.plan.load, scenario = d.deps.workload.name(), "load started");
    d.setup_background().await;
    let delivered = d.run(inbox, feed, &cancel, &lease).await;
    d.wrap_up(delivered, &errors_before).await
}

/// What the driver's spawned calls report back on.
struct Inbox {
    launched: mpsc::UnboundedReceiver<launch::Launched>,
    polled: mpsc::UnboundedReceiver<poll::Polled>,
    acted: mpsc::UnboundedReceiver<launch::Acted>,
}

/// The driver's timers, each delayed (not bunched) when the loop falls behind.
struct Ticks {
    poll: Interval,
    report_started: Interval,
    stage: Interval,
    progress: Interval,
}

impl Ticks {
    fn new(t0: Instant, completion_poll: Duration, agents: u32) -> Self {
        let every = |period: Duration| {
            let mut i = tokio::time::interval_at(t0 + period, period);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        };
        Ticks {
            poll: every(completion_poll),
            // Batched: the coordinator's message rate stays bounded as agents are added.
            report_started: every(loadgen_common::tracker::start_report_interval(agents)),
            stage: every(STAGE_TICK),
            progress: every(PROGRESS_EVERY),
        }
    }
}

impl<S: Sink> Driver<S> {
    /// A driver whose clocks start now, and the channels its calls report on.
    fn new(plan: RunSpec, deps: Deps, sink: S) -> (Self, Inbox) {
        let (launch_tx, launched) = mpsc::unbounded_channel();
        let (poll_tx, polled) = mpsc::unbounded_channel();
        let (act_tx, acted) = mpsc::unbounded_channel();
        // Both clocks at the same instant: intended start times are placed on the
        // wall clock from `t0`, and any gap between the two readings would make
        // them later than the start calls they precede.
        let (t0, wall0) = (Instant::now(), SystemTime::now());
        let mut arrivals = plan.load.arrivals(plan.spread.phase, plan.spread.seed);
        let next_due = arrivals.as_mut().and_then(Arrivals::next_due).map(|d| t0 + d);
        let background = deps.workload.background();
        let d = Driver {
            tallies: Tallies::new(Arc::clone(&deps.counters)),
            plan,
            deps,
            sink,
            t0,
            wall0,
            in_flight: HashMap::new(),
            next_due,
            arrivals,
            pending_starts: 0,
            next_seq: 0,
            retry_at: None,
            failures_logged: 0,
            launch_tx,
            poll_tx,
            act_tx,
            poll_pending: false,
            started: Vec::new(),
            hooks: JoinSet::new(),
            background_done: background.is_none(),
            errors_before: crate::metrics::provider_errors(),
            background,
            messages_pending: 0,
        };
        (d, Inbox { launched, polled, acted })
    }

    /// The loop: start, learn completions, report, until drained (or cut
    /// short). False when the coordinator stopped listening.
    async fn run(&mut self, mut inbox: Inbox, mut feed: Feed, cancel: &CancellationToken, lease: &Lease) -> bool {
        let (t0, deadline) = (self.t0, self.t0 + self.plan.duration);
        let drain_deadline = deadline + self.plan.drain_timeout;
        let own_queries = self.plan.tracking == Tracking::Agent;
        // A closed loop whose target changes is refilled on a tick as well as on
        // every completion.
        let staged = self.plan.load.follows_a_changing_target();
        let mut ticks = Ticks::new(t0, self.plan.completion_poll, self.plan.agent_count);
        let message_gap = self
            .background
            .as_ref()
            .map(|b| b.rate_per_sec())
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let mut next_message = message_gap.map(|_| t0);
        let mut draining = false;
        self.fill(draining);
        while !(draining && self.drained()) {
            let (retry_at, due) = (self.retry_at, self.next_due);
            tokio::select! {
                _ = tokio::time::sleep_until(due.unwrap_or(drain_deadline)), if due.is_some() && !draining => {
                    self.on_due(deadline);
                }
                _ = tokio::time::sleep_until(next_message.unwrap_or(drain_deadline)), if next_message.is_some() && !draining => {
                    next_message = self.on_message_due(next_message, message_gap);
                }
                Some(l) = inbox.launched.recv() => self.on_launch(l, draining),
                Some(a) = inbox.acted.recv() => self.on_acted(a),
                _ = ticks.poll.tick(), if own_queries => self.start_poll(),
                _ = ticks.stage.tick(), if staged && !draining => self.fill(draining),
                Some(done) = inbox.polled.recv() => {
                    self.on_poll(done);
                    self.fill(draining);
                }
                Some(rows) = feed.recv(), if !own_queries => {
                    self.on_finished(rows, Instant::now());
                    self.fill(draining);
                }
                _ = ticks.report_started.tick(), if !own_queries && !self.started.is_empty() => {
                    let ids = std::mem::take(&mut self.started);
                    if !self.sink.started(ids).await {
                        return coordinator_gone();
                    }
                }
                _ = ticks.progress.tick() => {
                    if !self.send_interval().await {
                        return coordinator_gone();
                    }
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or(drain_deadline)), if retry_at.is_some() => {
                    self.retry_at = None;
                    self.fill(draining);
                }
                _ = tokio::time::sleep_until(deadline), if !draining => {
                    // Starts due before the deadline that a late wake-up has not
                    // issued yet are issued now (late, and counted so), not lost
                    // when both timers are ready at once.
                    self.on_due(deadline);
                    draining = true;
                    tracing::info!(in_flight = self.in_flight.len(), "deadline reached; draining");
                }
                _ = tokio::time::sleep_until(drain_deadline) => {
                    tracing::warn!(unfinished = self.in_flight.len(), "drain timeout reached");
                    return true;
                }
                _ = cancel.cancelled() => {
                    tracing::warn!("run cancelled");
                    return true;
                }
                _ = lease.lost.cancelled() => {
                    let reason = lease.reason().unwrap_or_default();
                    tracing::warn!(reason, in_flight = self.in_flight.len(), "coordinator lost: stopped starting orchestrations");
                    return false;
                }
                _ = lease.stop.cancelled(), if !draining => {
                    tracing::warn!("coordinator asked to stop; draining");
                    draining = true;
                }
            }
            draining = draining || self.iterations_done();
        }
        true
    }

    /// Draining: the background's last messages sent, and nothing left in
    /// flight or being started.
    fn drained(&mut self) -> bool {
        self.finish_background();
        self.in_flight.is_empty() && self.pending_starts == 0 && self.background_done && self.messages_pending == 0
    }

    /// A closed loop with an iteration limit has nothing more to start.
    fn iterations_done(&self) -> bool {
        let done = self.plan.iterations.is_some_and(|n| self.next_seq >= n)
            && self.occupied() == 0
            && self.background.is_none();
        if done {
            tracing::info!("every iteration started and finished");
        }
        done
    }

    /// A background message is due: send it; when the next one is.
    fn on_message_due(&mut self, at: Option<Instant>, gap: Option<Duration>) -> Option<Instant> {
        let (Some(at), Some(gap)) = (at, gap) else { return at };
        if let Some(m) = self.background.as_mut().map(|b| b.next()) {
            self.send_message(m);
        }
        Some(at + gap)
    }

    /// After the loop: what is left is unfinished; the last interval and
    /// the finish go to the sink (when it still listens).
    async fn wrap_up(
        mut self,
        mut delivered: bool,
        errors_before: &std::collections::BTreeMap<String, u64>,
    ) -> RunOutcome {
        self.hooks.abort_all();
        // Start calls still under way when the loop ended are not waited for:
        // they were launched (or failed) after the bound; count them as unfinished.
        for f in self.in_flight.values() {
            self.tallies.count(f.scenario, 1, |c| &mut c.unfinished);
        }
        if self.pending_starts > 0 {
            let scenario = self.deps.workload.name();
            self.tallies.count(scenario, self.pending_starts, |c| &mut c.unfinished);
        }
        let elapsed = self.t0.elapsed();
        let activities_mark = self.tallies.activities_now();
        if delivered {
            delivered = self.send_interval().await;
        }
        if delivered {
            let finish = Finish {
                elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                provider_errors: crate::metrics::since(errors_before),
                progress_messages: self.tallies.intervals(),
            };
            delivered = self.sink.finish(finish).await;
        }
        let t = &self.tallies.totals;
        tracing::info!(
            launched = t.launched,
            completed = t.completed,
            failed = t.failed(),
            unfinished = t.unfinished,
            elapsed_ms = elapsed.as_millis() as u64,
            "load finished"
        );
        RunOutcome { activities_mark, delivered }
    }
}

/// The sink refused a message: the coordinator stopped listening.
fn coordinator_gone() -> bool {
    tracing::warn!("coordinator stopped listening; stopping load");
    false
}
