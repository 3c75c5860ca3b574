//! `events`: each orchestration waits for K external events, which the
//! driver raises through the client while it runs (`Client::enqueue_event`
//! into the instance's mailbox; `dequeue_event` consumes them in order).
//! It stresses client-to-instance messages arriving while the instance is
//! locked by another turn. Raise-to-consumed latency is read back from the
//! history: each event's data carries its raise time, and the history entry
//! the time its turn took it.
//!
//! Mailbox semantics (not positional `raise_event`) because an event raised
//! before the instance's first turn subscribed would otherwise be dropped:
//! a generator must not lose its own events and then blame the provider.

use std::sync::Arc;
use std::time::Duration;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{
    Action, At, Context, Entry, Expect, Facts, HistoryMetric, Hook, Info, MetricStart, OptionSpec, Reader, Registrar,
    Scenario, ScenarioError, Start,
};

const NAME: &str = "events";
const ORCHESTRATION: &str = "LoadgenEvents";
/// The mailbox the driver raises into.
pub const QUEUE: &str = "loadgen-event";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "client-raised events into running instances (raise-to-consumed latency from the history)",
        options: &[
            OptionSpec { key: "events", default: "3", help: "events each orchestration waits for (1-100)" },
            OptionSpec {
                key: "first_after",
                default: "50ms",
                help: "when the first event is raised after the start (0-1m)",
            },
            OptionSpec { key: "interval", default: "100ms", help: "gap between an instance's events (0-1m)" },
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Events {
    events: u32,
    #[serde(skip)]
    first_after: Duration,
    #[serde(skip)]
    interval: Duration,
}

fn build(r: &Reader<'_>, _: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let events = r.count("events", 1, 100)? as u32;
    let minute = Duration::from_secs(60);
    let first_after = r.duration("first_after", Duration::ZERO, minute)?;
    let interval = r.duration("interval", Duration::ZERO, minute)?;
    Ok(Arc::new(Events { events, first_after, interval }))
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let e: Events = super::input(NAME, &input)?;
        for _ in 0..e.events {
            ctx.dequeue_event(QUEUE).await;
        }
        Ok(format!("events:{}", e.events))
    });
}

impl Scenario for Events {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        let hooks = (0..self.events)
            .map(|i| Hook {
                after: self.first_after + self.interval * i,
                action: Action::Enqueue { queue: QUEUE, data: format!("event {i}") },
            })
            .collect();
        Start { scenario: NAME, orchestration: ORCHESTRATION, input: super::to_input(self), hooks, facts: Vec::new() }
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        let n = u64::from(self.events);
        Expect::completed(NAME, format!("events:{n}")).with_events(&[
            ("OrchestrationStarted", 1),
            ("ExternalSubscribedPersistent", n),
            ("ExternalEventPersistent", n),
            ("OrchestrationCompleted", 1),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn every_instance_gets_its_events_raised_in_order() {
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let opts: Options =
            [("events", "2"), ("interval", "1s")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let b = build(NAME, &opts, &ctx).expect("valid");
        let s = b.scenario.start(At { agent: 0, seq: 4 });
        assert_eq!(s.input, r#"{"events":2}"#);
        assert_eq!(
            s.hooks.iter().map(|h| h.after).collect::<Vec<_>>(),
            [Duration::from_millis(50), Duration::from_millis(1050)]
        );
        assert!(build(NAME, &[("events".to_string(), "0".to_string())].into(), &ctx).is_err());
    }
}
