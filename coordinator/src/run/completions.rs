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
//! start report interval (20 ms) later.
//!
//! The query is the agent's own ([`Tracker`]); latency still comes from the
//! runtime's `completed_at`, and the agent records when it learned of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use duroxide_pg::PostgresProvider;
use loadgen_agent::tracker::{Finished, Tracker};
use loadgen_common::proto::{self, run_control};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

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
    handle: JoinHandle<TrackerStats>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Started(a, ids) => write!(f, "Started({a}, {} ids)", ids.len()),
            Command::Forget(a) => write!(f, "Forget({a})"),
        }
    }
}

/// Where each agent's completions go: its Run call's control stream.
pub type Route = mpsc::UnboundedSender<proto::RunControl>;

impl ClusterTracker {
    /// Start tracking for the run on `schema`, querying every `every` while
    /// anything is in flight and sending agent `i`'s answers to `routes[i]`.
    pub fn start(provider: Arc<PostgresProvider>, schema: &str, routes: Vec<Route>, every: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let tracker = Tracker::new(schema);
        let handle = tokio::spawn(track(provider, tracker, routes, every, rx));
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

    /// Stop and say what it did.
    pub async fn finish(self) -> TrackerStats {
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

async fn track(
    provider: Arc<PostgresProvider>,
    tracker: Tracker,
    routes: Vec<Route>,
    every: Duration,
    mut rx: mpsc::UnboundedReceiver<Command>,
) -> TrackerStats {
    let mut stats = TrackerStats::default();
    let mut followed = Followed::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut errors_logged = 0u32;
    loop {
        tokio::select! {
            c = rx.recv() => match c {
                Some(c) => followed.apply(c),
                None => break,
            },
            _ = tick.tick() => {
                // Take every report that arrived meanwhile, so an instance
                // reported just now is in this query.
                while let Ok(c) = rx.try_recv() {
                    followed.apply(c);
                }
                if followed.agent_of.is_empty() {
                    continue;
                }
                stats.peak_in_flight = stats.peak_in_flight.max(followed.agent_of.len() as u64);
                let ids: Vec<String> = followed.agent_of.keys().cloned().collect();
                stats.queries += 1;
                match tracker.poll(&provider, &ids).await {
                    Ok(rows) => {
                        stats.found += rows.len() as u64;
                        for (agent, rows) in followed.route(rows) {
                            let c = loadgen_agent::wire::completions(rows);
                            let msg = proto::RunControl { control: Some(run_control::Control::Completions(c)) };
                            // A closed route is an agent that ended; its instances
                            // are forgotten when the follower hears of it.
                            if let Some(route) = routes.get(agent) {
                                let _ = route.send(msg);
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
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_agent::tracker::Terminal;

    fn done(id: &str) -> Finished {
        Finished { instance_id: id.into(), state: Terminal::Completed, completed_at: None }
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
    fn an_ended_agent_is_forgotten() {
        let mut f = Followed::default();
        f.apply(Command::Started(0, vec!["a".into()]));
        f.apply(Command::Started(1, vec!["b".into(), "c".into()]));
        f.apply(Command::Forget(1));
        assert_eq!(f.agent_of.keys().collect::<Vec<_>>(), ["a"]);
    }
}
