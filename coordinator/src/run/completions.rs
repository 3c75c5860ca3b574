//! Cluster-wide completion tracking: one batched query per tick for every
//! agent's instances in flight, each answer routed to the agent that started
//! the instance (protocol revision 5, `TRACKING_CLUSTER`).
//!
//! Why the coordinator and not each agent: a completion query costs a round
//! trip and a commit whatever it finds, so N agents polling on their own make
//! N queries a tick where one would do. Measured before this existed (25
//! orchestrations/s, 10 s): 0.82, 2.77 and 2.57 queries per orchestration at
//! 1, 4 and 8 agents. One query per tick for the whole cluster costs
//! `ticks per second / orchestrations per second` whatever the agent count,
//! and nothing at all while nothing is in flight. Adaptive polling inside
//! each agent cannot get there: to keep the observation delay's p99 under
//! 150 ms every agent must still poll at least ~7 times a second while it
//! has anything in flight, so many lightly loaded agents still multiply the
//! queries. The price of one tracker: every id crosses the wire twice (the
//! agent's start report and the answer) and an instance is seen up to one
//! start report interval (20 ms; more in clusters of over 100 agents) later.
//!
//! The tick follows the work: it is long enough for each query to find about
//! [`PER_QUERY`] completions at the rate lately seen, but never longer than
//! the ceiling (`--completion-poll`, which bounds how late a completion is
//! seen) nor shorter than [`FLOOR`]. So queries per orchestration stay near
//! 1/3 whatever the agent count or the throughput, up to ~10 a second at
//! low rates, and no query is made while nothing is in flight.
//!
//! The query is the agent's own ([`Tracker`]); latency still comes from the
//! runtime's `completed_at`, and the agent records when it learned of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::db::RunDb;
use loadgen_common::tracker::{Finished, Tracker};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the tracker did during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Completion queries made (the generator's tracking load).
    pub queries: u64,
    /// Of which failed (retried on the next tick).
    pub errors: u64,
    /// Terminal instances found and routed to their agents.
    pub found: u64,
    /// Most instances followed at once.
    pub peak_in_flight: u64,
}

enum Command {
    Started(usize, Vec<String>),
    Forget(usize),
}

/// The running tracker of one run.
#[derive(Debug)]
pub struct ClusterTracker {
    tx: mpsc::UnboundedSender<Command>,
    handle: JoinHandle<(TrackerStats, Vec<crate::db::audit::acknowledged::Seen>)>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Started(a, ids) => write!(f, "Started({a}, {} ids)", ids.len()),
            Command::Forget(a) => write!(f, "Forget({a})"),
        }
    }
}

pub use crate::agents::run::Route;

impl ClusterTracker {
    /// Start tracking for the run on `schema`, querying while anything is in
    /// flight, at most `ceiling` apart, and sending agent `i`'s answers to
    /// `routes[i]`.
    pub fn start(provider: Arc<RunDb>, schema: &str, routes: Vec<Route>, ceiling: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let tracker = Tracker::fingerprinting(schema);
        let handle = tokio::spawn(track(provider, tracker, routes, ceiling, rx));
        ClusterTracker { tx, handle }
    }

    /// Agent `agent` started `ids`.
    pub fn started(&self, agent: usize, ids: Vec<String>) {
        let _ = self.tx.send(Command::Started(agent, ids));
    }

    /// Agent `agent` ended (finished or lost): stop following its instances.
    pub fn forget(&self, agent: usize) {
        let _ = self.tx.send(Command::Forget(agent));
    }

    /// Stop and say what it did, with every instance it saw end (id, and
    /// whether it completed rather than failed).
    pub async fn finish(self) -> (TrackerStats, Vec<crate::db::audit::acknowledged::Seen>) {
        drop(self.tx);
        self.handle.await.unwrap_or_default()
    }
}

/// Followed instances, by id, with the agent that started each.
#[derive(Debug, Default)]
struct Followed {
    agent_of: HashMap<String, usize>,
}

impl Followed {
    fn apply(&mut self, c: Command) {
        match c {
            Command::Started(agent, ids) => self.agent_of.extend(ids.into_iter().map(|id| (id, agent))),
            Command::Forget(agent) => self.agent_of.retain(|_, a| *a != agent),
        }
    }

    /// Remove the finished instances and group them by agent.
    fn route(&mut self, rows: Vec<Finished>) -> HashMap<usize, Vec<Finished>> {
        let mut by_agent: HashMap<usize, Vec<Finished>> = HashMap::new();
        for f in rows {
            if let Some(agent) = self.agent_of.remove(&f.instance_id) {
                by_agent.entry(agent).or_default().push(f);
            }
        }
        by_agent
    }
}

/// Completions each query aims to find: the tick follows the completion
/// rate so the query count follows the work (1/3 query per orchestration),
/// within the floor and ceiling below.
const PER_QUERY: f64 = 3.0;
/// The shortest tick: past ~150 completions/s queries stop getting more
/// frequent and simply find more each.
const FLOOR: Duration = Duration::from_millis(20);
/// The window the completion rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// The completion rate lately seen, and the tick it asks for.
#[derive(Debug, Default)]
struct Pace {
    found: std::collections::VecDeque<(Instant, u64)>,
}

impl Pace {
    fn record(&mut self, at: Instant, n: u64) {
        self.found.push_back((at, n));
        while self.found.front().is_some_and(|(t, _)| at.duration_since(*t) > RATE_WINDOW) {
            self.found.pop_front();
        }
    }

    /// The tick for completions arriving at the recent rate: long enough to
    /// find [`PER_QUERY`] of them, never longer than `ceiling` (which bounds
    /// how late a completion is seen) nor shorter than [`FLOOR`].
    fn tick(&self, now: Instant, ceiling: Duration) -> Duration {
        let n: u64 = self.found.iter().filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW).map(|(_, n)| n).sum();
        if n == 0 {
            return ceiling;
        }
        let rate = n as f64 / RATE_WINDOW.as_secs_f64();
        Duration::from_secs_f64(PER_QUERY / rate).clamp(FLOOR.min(ceiling), ceiling)
    }
}

async fn track(
    provider: Arc<RunDb>,
    tracker: Tracker,
    routes: Vec<Route>,
    ceiling: Duration,
    mut rx: mpsc::UnboundedReceiver<Command>,
) -> (TrackerStats, Vec<crate::db::audit::acknowledged::Seen>) {
    let mut stats = TrackerStats::default();
    let mut seen: Vec<crate::db::audit::acknowledged::Seen> = Vec::new();
    let mut followed = Followed::default();
    let mut pace = Pace::default();
    let mut next = Instant::now() + ceiling;
    let mut errors_logged = 0u32;
    loop {
        tokio::select! {
            c = rx.recv() => match c {
                Some(c) => followed.apply(c),
                None => break,
            },
            _ = tokio::time::sleep_until(next) => {
                // Take every report that arrived meanwhile, so an instance
                // reported just now is in this query.
                while let Ok(c) = rx.try_recv() {
                    followed.apply(c);
                }
                let began = Instant::now();
                next = began + pace.tick(began, ceiling);
                if followed.agent_of.is_empty() {
                    continue;
                }
                stats.peak_in_flight = stats.peak_in_flight.max(followed.agent_of.len() as u64);
                let ids: Vec<String> = followed.agent_of.keys().cloned().collect();
                stats.queries += 1;
                match tracker.poll(provider.pool(), &ids).await {
                    Ok(rows) => {
                        stats.found += rows.len() as u64;
                        seen.extend(rows.iter().map(crate::db::audit::acknowledged::Seen::of));
                        pace.record(began, rows.len() as u64);
                        next = began + pace.tick(began, ceiling);
                        for (agent, rows) in followed.route(rows) {
                            // A closed route is an agent that ended; its instances
                            // are forgotten when the follower hears of it.
                            if let Some(route) = routes.get(agent) {
                                route.completions(rows);
                            }
                        }
                    }
                    Err(e) => {
                        stats.errors += 1;
                        if errors_logged < 10 {
                            errors_logged += 1;
                            tracing::warn!(error = %e, "completion query failed; retrying next tick");
                        }
                    }
                }
            }
        }
    }
    (stats, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_common::tracker::Terminal;

    fn done(id: &str) -> Finished {
        Finished { instance_id: id.into(), state: Terminal::Completed, completed_at: None, fingerprint: None }
    }

    #[test]
    fn answers_go_to_the_agent_that_started_each_instance() {
        let mut f = Followed::default();
        f.apply(Command::Started(0, vec!["r-0-0".into(), "r-0-1".into()]));
        f.apply(Command::Started(2, vec!["r-2-0".into()]));
        let routed = f.route(vec![done("r-0-1"), done("r-2-0"), done("unknown")]);
        assert_eq!(routed.len(), 2);
        assert_eq!(routed[&0], vec![done("r-0-1")]);
        assert_eq!(routed[&2], vec![done("r-2-0")]);
        // Found instances are no longer followed; the rest are.
        assert_eq!(f.agent_of.keys().collect::<Vec<_>>(), ["r-0-0"]);
        assert!(f.route(vec![done("r-0-1")]).is_empty());
    }

    #[test]
    fn the_tick_follows_the_completion_rate_within_bounds() {
        let ceiling = Duration::from_millis(100);
        let now = Instant::now();
        let mut pace = Pace::default();
        // Nothing found yet: the ceiling.
        assert_eq!(pace.tick(now, ceiling), ceiling);
        // 60 completions over the window (30/s): 3 per query means 100 ms.
        for i in 0..10u64 {
            pace.record(now - Duration::from_millis(180 * i), 6);
        }
        assert_eq!(pace.tick(now, ceiling).as_millis(), 100);
        // 50/s: 60 ms.
        pace.record(now, 40);
        assert_eq!(pace.tick(now, ceiling).as_millis(), 60);
        // Very fast: the floor.
        pace.record(now, 10_000);
        assert_eq!(pace.tick(now, ceiling), FLOOR);
        // Slow (10/s): the ceiling bounds the delay.
        let mut slow = Pace::default();
        slow.record(now, 20);
        assert_eq!(slow.tick(now, ceiling), ceiling);
        // Old completions leave the window.
        assert_eq!(slow.tick(now + Duration::from_secs(3), ceiling), ceiling);
    }

    #[test]
    fn an_ended_agent_is_forgotten() {
        let mut f = Followed::default();
        f.apply(Command::Started(0, vec!["a".into()]));
        f.apply(Command::Started(1, vec!["b".into(), "c".into()]));
        f.apply(Command::Forget(1));
        assert_eq!(f.agent_of.keys().collect::<Vec<_>>(), ["a"]);
    }
}
