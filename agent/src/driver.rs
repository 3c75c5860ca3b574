//! The load driver of one agent: closed loop (keep a slice in flight) or open
//! loop (start on a schedule, constant or Poisson, whatever the latency).
//!
//! One task owns all run state (no locks on the hot path): it keeps the
//! agent's slice of orchestrations in flight (or follows its schedule) until the deadline, learns
//! completions from one batched query per tick, records latencies into HDR
//! histograms, streams one progress message a second, drains within a bound
//! and ends with the full result. Start calls run as spawned tasks and report
//! back over a channel, so a slow start never delays completion tracking.
//!
//! The load shape is data ([`Plan`]); later load models (open loop, steps)
//! extend the plan rather than copying this loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use duroxide::{Client, OrchestrationStatus};
use duroxide_pg::PostgresProvider;
use loadgen_common::proto::{self, RunEvent, run_event};
use loadgen_common::result::{Counts, Histograms};
use loadgen_common::schema::instance_id;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::lease::Lease;
use crate::scenario::Scenario;
use crate::tracker::{Finished, Terminal, Tracker, category_from_output};

/// Bound on one start call; past it the slot is freed and a start error counted.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the typed look-up of a failed instance's error category.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed start before the slot is refilled, so a database
/// outage does not turn into a hot loop of failing start calls.
const START_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Progress interval.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// If the coordinator does not take a progress message within this bound it
/// is considered gone and the agent stops starting orchestrations.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What one agent must do in a run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub run_id: String,
    pub agent_index: u32,
    /// Orchestrations kept in flight (closed loop).
    pub concurrency: u64,
    /// How long new orchestrations are started.
    pub duration: Duration,
    /// How long in-flight orchestrations may take to finish after the deadline.
    pub drain_timeout: Duration,
    /// Interval of the batched completion query.
    pub completion_poll: Duration,
    /// Open loop: start on a schedule; `concurrency` is then the in-flight cap.
    pub open: Option<OpenLoop>,
}

/// An open-loop schedule.
#[derive(Clone, Debug)]
pub struct OpenLoop {
    /// This agent's starts per second.
    pub rate_per_sec: f64,
    /// Exponential gaps (Poisson arrivals) instead of even spacing.
    pub poisson: bool,
    /// First start this long after the common start.
    pub offset: Duration,
    /// Seed of the gaps' random numbers.
    pub seed: u64,
}

/// The gaps between open-loop starts.
#[derive(Debug)]
struct Schedule {
    mean_gap_s: f64,
    poisson: bool,
    state: u64,
}

impl Schedule {
    fn new(open: &OpenLoop) -> Self {
        Schedule { mean_gap_s: 1.0 / open.rate_per_sec, poisson: open.poisson, state: open.seed }
    }

    /// splitmix64: a uniform number in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The gap until the next start.
    fn gap(&mut self) -> Duration {
        let s = if self.poisson { -(1.0 - self.uniform()).ln() * self.mean_gap_s } else { self.mean_gap_s };
        Duration::from_secs_f64(s.min(3600.0))
    }
}

/// What the driver needs from the agent.
#[derive(Clone)]
pub struct Deps {
    pub client: Arc<Client>,
    pub provider: Arc<PostgresProvider>,
    pub tracker: Tracker,
    pub scenario: Arc<dyn Scenario>,
    /// Activity executions of this agent's runtimes (incremented by the activities).
    pub executed: Arc<AtomicU64>,
}

/// How the run ended, for the agent's bookkeeping.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Value of the activity counter when the result was taken: executions
    /// after it are reported on release.
    pub activities_mark: u64,
    /// False when the coordinator stopped listening before the end.
    pub delivered: bool,
}

struct Launch {
    id: String,
    issued: Issued,
    /// Open loop: when the start was due.
    intended: Option<Intended>,
    took: Duration,
    result: Result<(), String>,
}

/// When a start call was issued, on both clocks: the monotonic one for
/// observed latency, the wall clock to compare with the database's
/// completion time.
#[derive(Clone, Copy, Debug)]
struct Issued {
    at: Instant,
    wall: std::time::SystemTime,
}

/// When an open-loop start was due, on both clocks.
#[derive(Clone, Copy, Debug)]
struct Intended {
    at: Instant,
    wall: std::time::SystemTime,
}

/// What the driver remembers of an orchestration in flight.
#[derive(Clone, Copy, Debug)]
struct Flight {
    issued: Issued,
    intended: Option<Intended>,
}

struct Driver {
    plan: Plan,
    deps: Deps,
    t0: Instant,
    /// The wall clock at `t0`, to place intended start times on it.
    wall0: std::time::SystemTime,
    in_flight: HashMap<String, Flight>,
    /// Open loop: when the next start is due, and the gaps after it.
    next_due: Option<Instant>,
    schedule: Option<Schedule>,
    pending_starts: u64,
    next_seq: u64,
    retry_at: Option<Instant>,
    totals: Counts,
    interval: Counts,
    hist: Histograms,
    hist_interval: Histograms,
    activities_base: u64,
    activities_seen: u64,
    progress_seq: u64,
    failures_logged: u32,
    launch_tx: mpsc::UnboundedSender<Launch>,
    poll_tx: mpsc::UnboundedSender<PollResult>,
    poll_pending: bool,
}

/// Run the plan: wait `start_delay`, drive load, drain, and send progress and
/// the result on `events`. Cancelling `cancel` stops it early (what is in
/// flight then is reported as unfinished).
pub async fn drive(
    plan: Plan,
    deps: Deps,
    start_delay: Duration,
    events: mpsc::Sender<Result<RunEvent, Status>>,
    cancel: CancellationToken,
    lease: Lease,
) -> Outcome {
    tokio::select! {
        _ = tokio::time::sleep(start_delay) => {}
        _ = cancel.cancelled() => return Outcome::default(),
        _ = lease.lost.cancelled() => return Outcome::default(),
    }
    let (launch_tx, mut launch_rx) = mpsc::unbounded_channel();
    let (poll_tx, mut poll_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    let wall0 = std::time::SystemTime::now();
    let base = deps.executed.load(Ordering::Relaxed);
    let schedule = plan.open.as_ref().map(Schedule::new);
    let next_due = plan.open.as_ref().map(|o| t0 + o.offset);
    let errors_before = crate::metrics::provider_errors();
    let mut d = Driver {
        plan,
        deps,
        t0,
        wall0,
        in_flight: HashMap::new(),
        next_due,
        schedule,
        pending_starts: 0,
        next_seq: 0,
        retry_at: None,
        totals: Counts::default(),
        interval: Counts::default(),
        hist: Histograms::default(),
        hist_interval: Histograms::default(),
        activities_base: base,
        activities_seen: base,
        progress_seq: 0,
        failures_logged: 0,
        launch_tx,
        poll_tx,
        poll_pending: false,
    };
    match &d.plan.open {
        None => {
            tracing::info!(run = %d.plan.run_id, agent = d.plan.agent_index, concurrency = d.plan.concurrency, "load started (closed loop)")
        }
        Some(o) => tracing::info!(
            run = %d.plan.run_id,
            agent = d.plan.agent_index,
            rate = o.rate_per_sec,
            poisson = o.poisson,
            cap = d.plan.concurrency,
            "load started (open loop)"
        ),
    }
    let deadline = t0 + d.plan.duration;
    let drain_deadline = deadline + d.plan.drain_timeout;
    let mut poll = tokio::time::interval_at(t0 + d.plan.completion_poll, d.plan.completion_poll);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut progress = tokio::time::interval_at(t0 + PROGRESS_EVERY, PROGRESS_EVERY);
    progress.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut draining = false;
    let mut delivered = true;
    d.fill(draining);
    loop {
        if draining && d.in_flight.is_empty() && d.pending_starts == 0 {
            break;
        }
        let retry_at = d.retry_at;
        let due = d.next_due;
        tokio::select! {
            _ = tokio::time::sleep_until(due.unwrap_or(drain_deadline)), if due.is_some() && !draining => {
                d.on_due(deadline);
            }
            Some(launch) = launch_rx.recv() => d.on_launch(launch, draining),
            _ = poll.tick() => d.start_poll(),
            Some(done) = poll_rx.recv() => {
                d.on_poll(done);
                d.fill(draining);
            }
            _ = progress.tick() => {
                if !d.send_progress(&events).await {
                    delivered = false;
                    tracing::warn!(run = %d.plan.run_id, "coordinator stopped listening; stopping load");
                    break;
                }
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or(drain_deadline)), if retry_at.is_some() => {
                d.retry_at = None;
                d.fill(draining);
            }
            _ = tokio::time::sleep_until(deadline), if !draining => {
                draining = true;
                tracing::info!(run = %d.plan.run_id, in_flight = d.in_flight.len(), "deadline reached; draining");
            }
            _ = tokio::time::sleep_until(drain_deadline) => {
                tracing::warn!(run = %d.plan.run_id, unfinished = d.in_flight.len(), "drain timeout reached");
                break;
            }
            _ = cancel.cancelled() => {
                tracing::warn!(run = %d.plan.run_id, "run cancelled");
                break;
            }
            _ = lease.lost.cancelled() => {
                delivered = false;
                tracing::warn!(
                    run = %d.plan.run_id,
                    reason = lease.reason().unwrap_or_default(),
                    in_flight = d.in_flight.len(),
                    "coordinator lost: stopped starting orchestrations"
                );
                break;
            }
            _ = lease.stop.cancelled(), if !draining => {
                tracing::warn!(run = %d.plan.run_id, "coordinator asked to stop; draining");
                draining = true;
            }
        }
    }
    // Start calls still under way when the loop ended are not waited for:
    // they were launched (or failed) after the bound; count them as unfinished.
    let unfinished = d.in_flight.len() as u64 + d.pending_starts;
    d.totals.unfinished += unfinished;
    d.interval.unfinished += unfinished;
    let elapsed = d.t0.elapsed();
    let activities_mark = d.sample_activities();
    if delivered {
        delivered = d.send_progress(&events).await;
    }
    if delivered {
        let result = proto::AgentResult {
            totals: Some((&d.totals).into()),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            e2e_latency: d.hist.e2e.encode(),
            start_latency: d.hist.start.encode(),
            observed_latency: d.hist.observed.encode(),
            provider_errors: crate::metrics::since(&errors_before).into_iter().collect(),
            intended_latency: d.encode_intended(false),
        };
        let event = RunEvent { event: Some(run_event::Event::Result(result)) };
        delivered = tokio::time::timeout(SEND_TIMEOUT, events.send(Ok(event))).await.is_ok_and(|r| r.is_ok());
    }
    tracing::info!(
        run = %d.plan.run_id,
        launched = d.totals.launched,
        completed = d.totals.completed,
        failed = d.totals.failed(),
        unfinished = d.totals.unfinished,
        elapsed_ms = elapsed.as_millis() as u64,
        "load finished"
    );
    Outcome { activities_mark, delivered }
}

/// What a completion query found: terminal rows (with the failure category
/// of failed ones) and when the answer arrived.
type PollResult = Result<(Vec<(Finished, Option<&'static str>)>, Instant), String>;

/// The typed error category of a failed instance, from the client; the
/// stored message's prefix when that look-up fails.
async fn failure_category(client: &Client, id: &str, output: &str) -> &'static str {
    match tokio::time::timeout(LOOKUP_TIMEOUT, client.get_orchestration_status(id)).await {
        Ok(Ok(OrchestrationStatus::Failed { details, .. })) => details.category(),
        _ => category_from_output(output),
    }
}

/// End-to-end latency from the database's completion time, clamped to
/// `[0, seen]`: the runtime may run on another machine whose clock is off.
/// Returns the latency and whether it had to be clamped.
fn end_to_end(
    issued: std::time::SystemTime,
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

impl Driver {
    /// Closed loop: start orchestrations until the slice is full (never after
    /// the deadline, never while backing off after a failed start).
    fn fill(&mut self, draining: bool) {
        if draining || self.retry_at.is_some() || self.plan.open.is_some() {
            return;
        }
        while self.occupied() < self.plan.concurrency {
            self.launch(None);
        }
    }

    /// Orchestrations in flight or being started.
    fn occupied(&self) -> u64 {
        self.in_flight.len() as u64 + self.pending_starts
    }

    /// Open loop: issue every start that is due (late ones counted, ones over
    /// the in-flight cap dropped), then schedule the next. No start is due at
    /// or after the deadline.
    fn on_due(&mut self, deadline: Instant) {
        let now = Instant::now();
        while let Some(due) = self.next_due {
            if due > now {
                break;
            }
            if due >= deadline {
                self.next_due = None;
                break;
            }
            if self.occupied() >= self.plan.concurrency {
                self.totals.dropped += 1;
                self.interval.dropped += 1;
            } else {
                if now.saturating_duration_since(due) > Duration::from_millis(loadgen_common::result::LATE_AFTER_MS) {
                    self.totals.late += 1;
                    self.interval.late += 1;
                }
                let wall = self.wall0 + due.saturating_duration_since(self.t0);
                self.launch(Some(Intended { at: due, wall }));
            }
            let gap = self.schedule.as_mut().map_or(Duration::from_secs(1), Schedule::gap);
            self.next_due = Some(due + gap);
        }
    }

    /// Start one orchestration as its own task.
    fn launch(&mut self, intended: Option<Intended>) {
        let id = instance_id(&self.plan.run_id, self.plan.agent_index, self.next_seq);
        self.next_seq += 1;
        self.pending_starts += 1;
        let client = Arc::clone(&self.deps.client);
        let orchestration = self.deps.scenario.orchestration();
        let input = self.deps.scenario.input();
        let tx = self.launch_tx.clone();
        tokio::spawn(async move {
            let issued = Issued { at: Instant::now(), wall: std::time::SystemTime::now() };
            let call = client.start_orchestration(id.as_str(), orchestration, input);
            let result = match tokio::time::timeout(START_TIMEOUT, call).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("start call took longer than {START_TIMEOUT:?}")),
            };
            // The driver may be gone (run ended); nothing to report then.
            let _ = tx.send(Launch { id, issued, intended, took: issued.at.elapsed(), result });
        });
    }

    /// The intended-start histogram for the wire: empty bytes in closed loop.
    fn encode_intended(&self, interval: bool) -> Vec<u8> {
        match (&self.plan.open, interval) {
            (None, _) => Vec::new(),
            (Some(_), true) => self.hist_interval.intended.encode(),
            (Some(_), false) => self.hist.intended.encode(),
        }
    }

    fn on_launch(&mut self, launch: Launch, draining: bool) {
        self.pending_starts = self.pending_starts.saturating_sub(1);
        self.hist.start.record(launch.took);
        self.hist_interval.start.record(launch.took);
        match launch.result {
            Ok(()) => {
                self.totals.launched += 1;
                self.interval.launched += 1;
                self.in_flight.insert(launch.id, Flight { issued: launch.issued, intended: launch.intended });
            }
            Err(e) => {
                self.totals.start_errors += 1;
                self.interval.start_errors += 1;
                tracing::warn!(instance = %launch.id, error = %e, "start call failed");
                // Closed loop backs off; an open-loop schedule does not wait.
                if self.plan.open.is_none() {
                    self.retry_at = Some(Instant::now() + START_RETRY_BACKOFF);
                }
            }
        }
        self.fill(draining);
    }

    /// Start a completion query unless one is under way. It runs as its own
    /// task, so a slow database never delays progress messages (which the
    /// coordinator uses to tell a live agent from a dead one).
    fn start_poll(&mut self) {
        if self.poll_pending || self.in_flight.is_empty() {
            return;
        }
        self.poll_pending = true;
        self.totals.status_queries += 1;
        self.interval.status_queries += 1;
        let ids: Vec<String> = self.in_flight.keys().cloned().collect();
        let (deps, tx) = (self.deps.clone(), self.poll_tx.clone());
        tokio::spawn(async move {
            let result = match deps.tracker.poll(&deps.provider, &ids).await {
                Ok(rows) => {
                    let observed = Instant::now();
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let category = match &row.state {
                            Terminal::Completed => None,
                            Terminal::Failed { output } => {
                                Some(failure_category(&deps.client, &row.instance_id, output).await)
                            }
                        };
                        out.push((row, category));
                    }
                    Ok((out, observed))
                }
                Err(e) => Err(e),
            };
            // The driver may be gone (run ended); nothing to report then.
            let _ = tx.send(result);
        });
    }

    fn on_poll(&mut self, done: PollResult) {
        self.poll_pending = false;
        let (rows, observed) = match done {
            Ok(ok) => ok,
            Err(e) => {
                self.totals.status_query_errors += 1;
                self.interval.status_query_errors += 1;
                tracing::warn!(error = %e, "completion query failed; retrying next tick");
                return;
            }
        };
        for (Finished { instance_id: id, state, completed_at }, category) in rows {
            let Some(Flight { issued, intended }) = self.in_flight.remove(&id) else { continue };
            let seen = observed.saturating_duration_since(issued.at);
            let (e2e, clamped) = end_to_end(issued.wall, completed_at, seen);
            // Open loop: the same, from when the start was due.
            let from_due =
                intended.map(|due| end_to_end(due.wall, completed_at, observed.saturating_duration_since(due.at)).0);
            for (h, c) in [(&mut self.hist, &mut self.totals), (&mut self.hist_interval, &mut self.interval)] {
                h.e2e.record(e2e);
                h.observed.record(seen);
                if let Some(d) = from_due {
                    h.intended.record(d);
                }
                c.latency_clamped += u64::from(clamped);
            }
            match state {
                Terminal::Completed => {
                    self.totals.completed += 1;
                    self.interval.completed += 1;
                }
                Terminal::Failed { output } => {
                    let category = category.unwrap_or("application");
                    let bump = |c: &mut Counts| match category {
                        "infrastructure" => c.failed_infrastructure += 1,
                        "configuration" => c.failed_configuration += 1,
                        "poison" => c.failed_poison += 1,
                        _ => c.failed_application += 1,
                    };
                    bump(&mut self.totals);
                    bump(&mut self.interval);
                    if self.failures_logged < 10 {
                        self.failures_logged += 1;
                        tracing::warn!(instance = %id, category, error = %output, "orchestration failed");
                    }
                }
            }
        }
    }

    /// Read the activity counter, folding the new executions into the counts.
    fn sample_activities(&mut self) -> u64 {
        let now = self.deps.executed.load(Ordering::Relaxed);
        let delta = now.saturating_sub(self.activities_seen);
        self.activities_seen = now;
        self.interval.activities += delta;
        self.totals.activities = now.saturating_sub(self.activities_base);
        now
    }

    /// Send this interval's counts and histogram deltas; false when the
    /// coordinator is gone.
    async fn send_progress(&mut self, events: &mpsc::Sender<Result<RunEvent, Status>>) -> bool {
        self.sample_activities();
        self.progress_seq += 1;
        let progress = proto::Progress {
            seq: self.progress_seq,
            elapsed_ms: u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX),
            interval: Some((&self.interval).into()),
            in_flight: self.in_flight.len() as u64 + self.pending_starts,
            e2e_latency: self.hist_interval.e2e.encode(),
            start_latency: self.hist_interval.start.encode(),
            observed_latency: self.hist_interval.observed.encode(),
            rss_bytes: loadgen_common::process::rss_bytes(),
            intended_latency: self.encode_intended(true),
        };
        self.interval = Counts::default();
        self.hist_interval.reset();
        let event = RunEvent { event: Some(run_event::Event::Progress(progress)) };
        matches!(tokio::time::timeout(SEND_TIMEOUT, events.send(Ok(event))).await, Ok(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn schedules_space_starts_at_the_rate() {
        let open = |poisson| OpenLoop { rate_per_sec: 200.0, poisson, offset: Duration::ZERO, seed: 42 };
        let mut constant = Schedule::new(&open(false));
        assert!((0..100).all(|_| constant.gap() == Duration::from_secs_f64(0.005)));
        // Poisson: mean gap 1/rate, and the spread of an exponential
        // distribution (standard deviation equal to the mean).
        let mut poisson = Schedule::new(&open(true));
        let gaps: Vec<f64> = (0..20_000).map(|_| poisson.gap().as_secs_f64()).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.005).abs() < 0.0002, "mean gap {mean}");
        assert!((var.sqrt() - 0.005).abs() < 0.0003, "sd {}", var.sqrt());
        // The same seed gives the same schedule, another seed another one.
        let gaps_of = |seed| {
            let mut s = Schedule::new(&OpenLoop { seed, ..open(true) });
            (0..5).map(|_| s.gap()).collect::<Vec<_>>()
        };
        assert_eq!(gaps_of(7), gaps_of(7));
        assert_ne!(gaps_of(7), gaps_of(8));
    }

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
}
