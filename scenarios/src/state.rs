//! `state`: durable instance state (key-value entries and custom status).
//! Each of `steps` turns writes a KV entry and the custom status, then
//! schedules an activity that reads both back through a client, from
//! whichever runtime (and agent) the activity lands on. The provider must
//! commit a turn's KV entries and status with the turn itself: an activity
//! dispatched by that commit that reads older state fails, and the instance
//! with it (an unexpected failure the audit names).

use std::sync::Arc;

use duroxide::OrchestrationContext;
use duroxide::runtime::OrchestrationStatus;
use serde::{Deserialize, Serialize};

use super::{At, Context, Entry, Expect, Facts, Info, OptionSpec, Reader, Registrar, Scenario, ScenarioError, Start};

const NAME: &str = "state";
const ORCHESTRATION: &str = "LoadgenState";
const ACTIVITY: &str = "LoadgenStateRead";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "KV entries and custom status written by a turn, read back by the activity that turn dispatched (read-your-writes across runtimes)",
        options: &[OptionSpec {
            key: "steps",
            default: "3",
            help: "turns, each writing a KV entry and the status (1-50)",
        }],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[],
    },
    register,
    build,
};

/// Typed options; also the orchestration's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    steps: u32,
}

/// What the activity must read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Check {
    key: String,
    value: String,
    status: String,
}

fn build(r: &Reader<'_>, _: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    Ok(Arc::new(State { steps: r.count("steps", 1, 50)? as u32 }))
}

fn status(step: u32, steps: u32) -> String {
    format!("step {step} of {steps}")
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let s: State = super::input(NAME, &input)?;
        for step in 1..=s.steps {
            let check = Check {
                key: format!("k{step}"),
                value: format!("{}:{step}", ctx.instance_id()),
                status: status(step, s.steps),
            };
            ctx.set_kv_value(check.key.clone(), check.value.clone());
            ctx.set_custom_status(check.status.clone());
            ctx.schedule_activity(ACTIVITY, super::to_input(&check)).await?;
        }
        Ok(format!("state:{}", ctx.get_kv_length()))
    });
    r.activity(NAME, ACTIVITY, |ctx, input: String| async move {
        let c: Check = super::input(NAME, &input)?;
        let client = ctx.get_client();
        let instance = ctx.instance_id().to_string();
        let read = client.get_kv_value(&instance, &c.key).await.map_err(|e| format!("reading KV {}: {e}", c.key))?;
        if read.as_deref() != Some(c.value.as_str()) {
            return Err(format!("KV {} read {read:?} where {:?} was written by the turn", c.key, c.value));
        }
        let seen = match client.get_orchestration_status(&instance).await {
            Ok(OrchestrationStatus::Running { custom_status, .. }) => custom_status,
            Ok(other) => return Err(format!("status {other:?} while its activity runs")),
            Err(e) => return Err(format!("reading the status: {e}")),
        };
        if seen.as_deref() != Some(c.status.as_str()) {
            return Err(format!("custom status {seen:?} where {:?} was set by the turn", c.status));
        }
        Ok(String::new())
    });
}

impl Scenario for State {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        Start::plain(NAME, ORCHESTRATION, super::to_input(self))
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        let n = u64::from(self.steps);
        Expect::completed(NAME, format!("state:{n}")).with_events(&[
            ("OrchestrationStarted", 1),
            ("KeyValueSet", n),
            ("CustomStatusUpdated", n),
            ("ActivityScheduled", n),
            ("ActivityCompleted", n),
            ("OrchestrationCompleted", 1),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn steps_set_the_input_and_the_expected_history() {
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let b = build(NAME, &[("steps".to_string(), "4".to_string())].into(), &ctx).expect("valid");
        assert_eq!(b.scenario.start(At { agent: 0, seq: 0 }).input, r#"{"steps":4}"#);
        let e = b.scenario.expect(At { agent: 0, seq: 0 }, &Facts::new());
        assert_eq!(e.events[1], ("KeyValueSet", super::super::Count::Exactly(4)));
        assert!(build(NAME, &Options::new(), &ctx).is_ok());
        for bad in ["0", "51", "many"] {
            assert!(build(NAME, &[("steps".to_string(), bad.to_string())].into(), &ctx).is_err(), "{bad}");
        }
    }
}
