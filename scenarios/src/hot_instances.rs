//! `hot-instances`: a few long-lived instances receive events from every
//! agent at a configured rate, so every runtime of every agent competes for
//! the same instances' locks (duroxide-pg's per-instance lock in
//! `fetch_orchestration_item`). Each instance counts what it consumed per
//! agent and continues as new to keep its history bounded; when every agent
//! has said how many it sent ("done"), it completes, failing if any agent's
//! events were consumed other than exactly once. The audit holds each
//! instance's output to the events the agents reported sending.

use std::collections::BTreeMap;
use std::sync::Arc;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{
    Action, At, Background, Context, Count, Entry, Expect, Facts, HistoryMetric, Info, Message, MetricStart,
    OptionSpec, Outcome, Output, Reader, Registrar, Scenario, ScenarioError, Setup, Start,
};

const NAME: &str = "hot-instances";
const ORCHESTRATION: &str = "LoadgenHotInstance";
/// The mailbox every agent raises into.
const QUEUE: &str = "loadgen-hot";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "many runtimes competing for the same instances: events from every agent into a few hot instances",
        options: &[
            OptionSpec { key: "instances", default: "2", help: "hot instances (1-50)" },
            OptionSpec { key: "rate", default: "20/s", help: "events per second, cluster-wide, split over the agents" },
            OptionSpec {
                key: "per_generation",
                default: "200",
                help: "events an instance consumes before it continues as new (10-10000)",
            },
        ],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[HistoryMetric {
            name: "event latency",
            event: "ExternalEventPersistent",
            from: MetricStart::RaisedAt,
        }],
    },
    register,
    build,
};

#[derive(Clone, Debug, PartialEq)]
struct Hot {
    run_id: String,
    agent: u32,
    agents: u32,
    instances: u32,
    rate: f64,
    per_generation: u32,
}

/// A hot instance's state, carried from generation to generation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    agents: u32,
    per_generation: u32,
    /// Events consumed, per agent.
    consumed: BTreeMap<u32, u64>,
    /// Each agent's last word: events it sent, and sends that failed or were
    /// retried after a failed attempt (and so may have arrived once less or
    /// once more).
    done: BTreeMap<u32, (u64, u64)>,
}

impl State {
    fn finished(&self) -> bool {
        self.done.len() as u32 >= self.agents
            && self.done.iter().all(|(a, (sent, _))| self.consumed.get(a).copied().unwrap_or(0) >= *sent)
    }

    /// The output, or what went wrong.
    fn verdict(&self) -> Result<String, String> {
        for (a, (sent, failed)) in &self.done {
            let got = self.consumed.get(a).copied().unwrap_or(0);
            if got > sent + failed {
                return Err(format!(
                    "hot instance consumed {got} events from agent {a}, which sent {sent} ({failed} failed or retried sends)"
                ));
            }
        }
        Ok(format!("hot:{}", self.consumed.values().sum::<u64>()))
    }
}

fn build(r: &Reader<'_>, ctx: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let instances = r.count("instances", 1, 50)? as u32;
    let rate = r.rate("rate", 10_000.0)?;
    let per_generation = r.count("per_generation", 10, 10_000)? as u32;
    Ok(Arc::new(Hot {
        run_id: ctx.run_id.clone(),
        agent: ctx.agent,
        agents: ctx.agents.max(1),
        instances,
        rate,
        per_generation,
    }))
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let mut s: State = super::input(NAME, &input)?;
        let mut seen = 0;
        loop {
            if s.finished() {
                return s.verdict();
            }
            if seen >= s.per_generation {
                return ctx.continue_as_new(super::to_input(&s)).await;
            }
            let data = ctx.dequeue_event(QUEUE).await;
            seen += 1;
            let (_, body) = super::split_raised(&data);
            let parts: Vec<&str> = body.split(':').collect();
            match parts.as_slice() {
                ["ev", agent, _] => {
                    *s.consumed.entry(agent.parse().map_err(|_| format!("event {body:?}"))?).or_default() += 1
                }
                ["done", agent, sent, failed] => {
                    let n = |t: &str| t.parse::<u64>().map_err(|_| format!("done message {body:?}"));
                    s.done.insert(agent.parse().map_err(|_| format!("done message {body:?}"))?, (n(sent)?, n(failed)?));
                }
                _ => return Err(format!("hot instance: unknown message {body:?}")),
            }
        }
    });
}

/// Instance id of hot instance `j` of run `run_id`.
fn hot_id(run_id: &str, j: u32) -> String {
    format!("{run_id}-hot-{j}")
}

/// One agent's events to the hot instances.
#[derive(Debug)]
struct Sender {
    hot: Hot,
    sent: u64,
    /// Per hot instance: sends that succeeded, and that failed.
    ok: Vec<u64>,
    failed: Vec<u64>,
}

impl Background for Sender {
    fn scenario(&self) -> &'static str {
        NAME
    }

    fn setup(&self) -> Vec<Setup> {
        let state = State { agents: self.hot.agents, per_generation: self.hot.per_generation, ..Default::default() };
        (0..self.hot.instances)
            .map(|j| Setup {
                instance: hot_id(&self.hot.run_id, j),
                start: Start::plain(NAME, ORCHESTRATION, super::to_input(&state)),
                tracked: self.hot.agent == 0,
            })
            .collect()
    }

    fn rate_per_sec(&self) -> f64 {
        self.hot.rate / f64::from(self.hot.agents)
    }

    fn next(&mut self) -> Message {
        let j = (self.sent % u64::from(self.hot.instances)) as u32;
        self.sent += 1;
        Message {
            instance: hot_id(&self.hot.run_id, j),
            action: Action::Enqueue { queue: QUEUE, data: format!("ev:{}:{}", self.hot.agent, self.sent) },
            fact: format!("raised:{j}"),
        }
    }

    fn sent(&mut self, m: &Message, ok: bool) {
        let Some(j) = m.fact.strip_prefix("raised:").and_then(|j| j.parse::<usize>().ok()) else { return };
        let slot = if ok { self.ok.get_mut(j) } else { self.failed.get_mut(j) };
        if let Some(n) = slot {
            *n += 1;
        }
    }

    /// Sent only after a failed attempt that may have committed: it may
    /// have arrived twice, which the verdict allows for as it does a failed send.
    fn retried(&mut self, m: &Message) {
        let Some(j) = m.fact.strip_prefix("raised:").and_then(|j| j.parse::<usize>().ok()) else { return };
        if let Some(n) = self.failed.get_mut(j) {
            *n += 1;
        }
    }

    fn finish(&self) -> Vec<Message> {
        (0..self.hot.instances)
            .map(|j| {
                let (ok, failed) = (self.ok[j as usize], self.failed[j as usize]);
                Message {
                    instance: hot_id(&self.hot.run_id, j),
                    action: Action::Enqueue { queue: QUEUE, data: format!("done:{}:{ok}:{failed}", self.hot.agent) },
                    fact: "done_sent".into(),
                }
            })
            .collect()
    }
}

impl Scenario for Hot {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        // No instances of its own: its load is the background's.
        Start::plain(NAME, ORCHESTRATION, String::new())
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        Expect::completed(NAME, "")
    }

    fn has_instances(&self) -> bool {
        false
    }

    fn background(&self) -> Option<Box<dyn Background>> {
        let n = self.instances as usize;
        Some(Box::new(Sender { hot: self.clone(), sent: 0, ok: vec![0; n], failed: vec![0; n] }))
    }

    fn extra_instances(&self, facts: &Facts) -> Vec<(String, Expect)> {
        // Failed sends may not have arrived, retried ones may have arrived twice.
        let unsure = |f: &std::collections::BTreeMap<String, u64>| {
            f.get("call_errors").copied().unwrap_or(0) + f.get("calls_retried").copied().unwrap_or(0)
        };
        let failed_sends: u64 = facts.values().map(unsure).sum();
        (0..self.instances)
            .map(|j| {
                let sent: u64 = facts.values().map(|f| f.get(&format!("raised:{j}")).copied().unwrap_or(0)).sum();
                // Every event consumed exactly once: the output counts them.
                let output = if failed_sends == 0 {
                    Output::Exact(format!("hot:{sent}"))
                } else {
                    Output::Prefix("hot:".into())
                };
                let expect = Expect {
                    scenario: NAME,
                    outcome: Outcome::Completed(output),
                    executions: Count::AtLeast(1),
                    events: Vec::new(),
                    children: None,
                };
                (hot_id(&self.run_id, j), expect)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn agents_share_the_rate_and_the_hot_instances() {
        let ctx = Context { run_id: "r1".into(), seed: 1, agent: 1, agents: 4 };
        let opts: Options =
            [("instances", "3"), ("rate", "40/s")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let b = build(NAME, &opts, &ctx).expect("valid");
        assert!(!b.scenario.has_instances());
        let mut bg = b.scenario.background().expect("background");
        assert_eq!(bg.rate_per_sec(), 10.0);
        let setup = bg.setup();
        assert_eq!(setup.iter().map(|s| s.instance.as_str()).collect::<Vec<_>>(), ["r1-hot-0", "r1-hot-1", "r1-hot-2"]);
        assert!(setup.iter().all(|s| !s.tracked), "agent 1 does not follow them");
        let m: Vec<Message> = (0..4).map(|_| bg.next()).collect();
        assert_eq!(m[3].instance, "r1-hot-0");
        for x in &m {
            bg.sent(x, true);
        }
        bg.sent(&m[1], false);
        // Sent after a failed attempt: it may have arrived twice.
        bg.retried(&m[2]);
        let done = bg.finish();
        assert_eq!(done[0].action, Action::Enqueue { queue: QUEUE, data: "done:1:2:0".into() });
        assert_eq!(done[1].action, Action::Enqueue { queue: QUEUE, data: "done:1:1:1".into() });
        assert_eq!(done[2].action, Action::Enqueue { queue: QUEUE, data: "done:1:1:1".into() });
        let facts = Facts::from([(0, [("raised:0".to_string(), 5)].into()), (1, [("raised:0".to_string(), 2)].into())]);
        let extra = b.scenario.extra_instances(&facts);
        assert_eq!(extra[0].1.outcome, Outcome::Completed(Output::Exact("hot:7".into())));
        let retried = Facts::from([(0, [("raised:0".to_string(), 5), ("calls_retried".to_string(), 1)].into())]);
        let extra = b.scenario.extra_instances(&retried);
        assert_eq!(
            extra[0].1.outcome,
            Outcome::Completed(Output::Prefix("hot:".into())),
            "a retried send may arrive twice"
        );
    }

    #[test]
    fn a_hot_instance_finishes_when_every_agent_is_done_and_counted() {
        let mut s = State { agents: 2, per_generation: 10, ..Default::default() };
        s.consumed.insert(0, 3);
        s.done.insert(0, (3, 0));
        assert!(!s.finished());
        s.done.insert(1, (0, 0));
        assert!(s.finished());
        assert_eq!(s.verdict(), Ok("hot:3".into()));
        s.consumed.insert(1, 1);
        assert!(s.verdict().is_err(), "an event nobody sent");
    }
}
