//! Starting instances and acting on them: start calls, the scenario's hooks
//! (raise an event, cancel) and its background messages. Every client call
//! runs as its own bounded task and reports back over a channel, so a slow
//! call never delays completion tracking or progress.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use duroxide::Client;
use loadgen_common::schema::instance_id;
use loadgen_common::tally::LATE_AFTER_MS;
use tokio::time::Instant;

use super::{Driver, Flight, Issued};
use crate::scenario::{Action, At, Facts, Message, Outcome, Start};

/// Bound on one start call; past it the slot is freed and a start error counted.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one hook or background call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed start before the slot is refilled, so a database
/// outage does not turn into a hot loop of failing start calls.
pub const START_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// A start call's result.
#[derive(Debug)]
pub struct Launched {
    pub id: String,
    pub start: Start,
    pub outcome: Outcome,
    pub issued: Issued,
    /// Open loop: when the start was due.
    pub intended: Option<Issued>,
    pub took: Duration,
    pub result: Result<(), String>,
}

/// A hook's or background message's result.
#[derive(Debug)]
pub struct Acted {
    pub scenario: &'static str,
    pub fact: String,
    pub ok: bool,
    /// Attempts that failed before the last (a call that succeeded after
    /// any may have been delivered twice).
    pub retried: u32,
    /// The background message it was (to tell the sender).
    pub message: Option<Message>,
}

/// Perform `action` on `instance`, retrying a failed call (a database
/// restart or a terminated connection) with backoff for up to
/// [`CALL_TIMEOUT`]: an event that is never raised would leave its instance
/// waiting forever and read as the provider's fault. A call that failed
/// after its write committed (a connection a proxy cut while the commit's
/// answer was on its way) delivers the event twice when retried: the
/// number of failed attempts is returned with the result, so a call that
/// succeeded after any is counted as possibly delivered twice.
pub async fn act(client: &Client, instance: &str, action: &Action) -> (Result<(), String>, u32) {
    retrying_counted(instance, Instant::now(), CALL_TIMEOUT, || act_once(client, instance, action)).await
}

/// Call `attempt` until it succeeds or `bound` (from `began`) would pass,
/// backing off from 100 ms, doubling to 2 s; the last error otherwise.
async fn retrying<F, Fut>(instance: &str, began: Instant, bound: Duration, attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    retrying_counted(instance, began, bound, attempt).await.0
}

/// [`retrying`], with how many attempts failed.
async fn retrying_counted<F, Fut>(
    instance: &str,
    began: Instant,
    bound: Duration,
    mut attempt: F,
) -> (Result<(), String>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut backoff = Duration::from_millis(100);
    let mut failed = 0;
    loop {
        match attempt().await {
            Err(e) if began.elapsed() + backoff < bound => {
                failed += 1;
                tracing::debug!(instance, error = %e, "call failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            done => return (done, failed),
        }
    }
}

/// Test knob: every event is raised twice with the same data, so the audit's
/// exactly-once check (and `coordinator hunt`) can be shown to catch a
/// duplicate without a provider defect.
const RAISE_TWICE_KNOB: &str = "LOADGEN_TEST_RAISE_TWICE";

fn raise_twice() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(RAISE_TWICE_KNOB).is_some())
}

async fn act_once(client: &Client, instance: &str, action: &Action) -> Result<(), String> {
    let call = async {
        match action {
            Action::Enqueue { queue, data } => {
                let ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
                let data = format!("{ms}|{data}");
                if raise_twice() {
                    // Test knob: one message delivered twice, as a provider
                    // that loses an acknowledgement's deletes delivers it.
                    client.enqueue_event(instance, *queue, data.clone()).await?;
                }
                client.enqueue_event(instance, *queue, data).await
            }
            Action::Cancel { reason } => client.cancel_instance(instance, reason.as_str()).await,
        }
    };
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("call took longer than {CALL_TIMEOUT:?}")),
    }
}

impl<S> Driver<S> {
    /// Orchestrations in flight or being started.
    pub(super) fn occupied(&self) -> u64 {
        self.in_flight.len() as u64 + self.pending_starts
    }

    /// True while this agent may start another instance.
    fn may_start(&self) -> bool {
        self.deps.workload.has_instances() && self.plan.iterations.is_none_or(|n| self.next_seq < n)
    }

    /// Closed loop: start orchestrations until the slice is full (never after
    /// the deadline, never while backing off after a failed start).
    pub(super) fn fill(&mut self, draining: bool) {
        if self.plan.load.is_open() || draining || self.retry_at.is_some() {
            return;
        }
        let target = self.plan.load.target_at(self.t0.elapsed(), self.plan.agent_index, self.plan.agent_count);
        while self.occupied() < target && self.may_start() {
            self.launch_next(None);
        }
    }

    /// Open loop: issue every start that is due (ones over the in-flight cap
    /// dropped; how late each was is measured when its call began, in
    /// [`Self::on_launch`]), then schedule the next. No start is due at
    /// or after the deadline.
    pub(super) fn on_due(&mut self, deadline: Instant) {
        if !self.plan.load.is_open() {
            return;
        }
        let cap = self.plan.load.max_in_flight;
        let now = Instant::now();
        while let Some(due) = self.next_due {
            if due > now {
                break;
            }
            if due >= deadline || !self.may_start() {
                self.next_due = None;
                break;
            }
            let scenario = self.deps.workload.scenario_of(At { agent: self.plan.agent_index, seq: self.next_seq });
            if self.occupied() >= cap {
                self.next_seq += 1;
                self.tallies.count(scenario, 1, |c| &mut c.dropped);
            } else {
                let wall = self.wall0 + due.saturating_duration_since(self.t0);
                self.launch_next(Some(Issued { at: due, wall }));
            }
            self.next_due = self.arrivals.as_mut().and_then(|a| a.next_due()).map(|d| self.t0 + d);
        }
    }

    /// Start the next instance of the scenario.
    fn launch_next(&mut self, intended: Option<Issued>) {
        let at = At { agent: self.plan.agent_index, seq: self.next_seq };
        self.next_seq += 1;
        let start = self.deps.workload.start(at);
        let outcome = self.deps.workload.expect(at, &Facts::new()).outcome;
        let id = instance_id(&self.plan.run_id, at.agent, at.seq);
        self.launch(id, start, outcome, intended);
    }

    /// Start `start` as instance `id`, as its own task.
    fn launch(&mut self, id: String, start: Start, outcome: Outcome, intended: Option<Issued>) {
        self.pending_starts += 1;
        let client = Arc::clone(&self.deps.client);
        let tx = self.launch_tx.clone();
        tokio::spawn(async move {
            let issued = Issued { at: Instant::now(), wall: SystemTime::now() };
            // A failed start is retried with the same id until START_TIMEOUT:
            // a second start of an existing id is ignored, so a start whose
            // first attempt committed before its error (a connection reset
            // while the commit's answer was on its way) is neither lost nor
            // doubled, and counted once.
            let result = retrying(&id, issued.at, START_TIMEOUT, || async {
                let left = START_TIMEOUT.saturating_sub(issued.at.elapsed());
                let call = client.start_orchestration(id.as_str(), start.orchestration, start.input.as_str());
                match tokio::time::timeout(left, call).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("start call took longer than {START_TIMEOUT:?}")),
                }
            })
            .await;
            // The driver may be gone (run ended); nothing to report then.
            let _ = tx.send(Launched { id, start, outcome, issued, intended, took: issued.at.elapsed(), result });
        });
    }

    pub(super) fn on_launch(&mut self, l: Launched, draining: bool) {
        self.pending_starts = self.pending_starts.saturating_sub(1);
        let scenario = l.start.scenario;
        self.tallies.of(scenario).hist.start.record(l.took);
        // Open loop: how late the call began (actual minus intended start),
        // the generator's own delay; the system's latency is apart from it.
        if let Some(due) = l.intended {
            let late = l.issued.at.saturating_duration_since(due.at);
            self.tallies.of(scenario).hist.lateness.record(late);
            if late > Duration::from_millis(LATE_AFTER_MS) {
                self.tallies.count(scenario, 1, |c| &mut c.late);
            }
        }
        match l.result {
            Ok(()) => {
                self.tallies.count(scenario, 1, |c| &mut c.launched);
                for (fact, n) in &l.start.facts {
                    self.tallies.of(scenario).fact(fact, *n);
                }
                for hook in l.start.hooks {
                    let (client, tx, id) = (Arc::clone(&self.deps.client), self.act_tx.clone(), l.id.clone());
                    self.hooks.spawn(async move {
                        tokio::time::sleep(hook.after).await;
                        let (result, retried) = act(&client, &id, &hook.action).await;
                        if let Err(e) = &result {
                            tracing::warn!(instance = %id, error = %e, "hook call failed");
                        }
                        let fact = hook.action.fact().to_string();
                        let _ = tx.send(Acted { scenario, fact, ok: result.is_ok(), retried, message: None });
                    });
                }
                self.track(
                    l.id,
                    Flight { scenario, outcome: l.outcome, issued: l.issued, intended: l.intended, timed: true },
                );
            }
            Err(e) => {
                self.tallies.count(scenario, 1, |c| &mut c.start_errors);
                tracing::warn!(instance = %l.id, error = %e, "start call failed");
                // Closed loop backs off; an open-loop schedule does not wait.
                if !self.plan.load.is_open() {
                    self.retry_at = Some(Instant::now() + START_RETRY_BACKOFF);
                }
            }
        }
        self.fill(draining);
    }

    /// Send one background message as its own task.
    pub(super) fn send_message(&mut self, message: Message) {
        self.messages_pending += 1;
        let (client, tx) = (Arc::clone(&self.deps.client), self.act_tx.clone());
        let scenario = self.background.as_ref().map_or(self.deps.workload.name(), |b| b.scenario());
        self.hooks.spawn(async move {
            let (result, retried) = act(&client, &message.instance, &message.action).await;
            if let Err(e) = &result {
                tracing::warn!(instance = %message.instance, error = %e, "message failed");
            }
            let fact = message.fact.clone();
            let _ = tx.send(Acted { scenario, fact, ok: result.is_ok(), retried, message: Some(message) });
        });
    }

    pub(super) fn on_acted(&mut self, a: Acted) {
        let t = self.tallies.of(a.scenario);
        if a.ok {
            t.fact(&a.fact, 1);
        } else {
            t.fact("call_errors", 1);
        }
        if a.ok && a.retried > 0 {
            t.fact("calls_retried", 1);
        }
        if let Some(m) = a.message {
            self.messages_pending = self.messages_pending.saturating_sub(1);
            if let Some(bg) = self.background.as_mut() {
                bg.sent(&m, a.ok);
                if a.ok && a.retried > 0 {
                    bg.retried(&m);
                }
            }
        }
    }
}
