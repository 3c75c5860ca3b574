//! `cancellation`: the driver cancels a share of running instances after a
//! delay (`Client::cancel_instance`). Each instance waits on a durable timer
//! and then runs an activity; a cancelled one must end cancelled, or
//! completed if it finished first (counted as such). It stresses the cancel
//! work item against in-flight turns, timers and activities.

use std::sync::Arc;
use std::time::Duration;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{
    Action, At, Context, Count, Entry, Expect, Facts, Hook, Info, OptionSpec, Outcome, Output, Reader, Registrar,
    Scenario, ScenarioError, Start,
};

const NAME: &str = "cancellation";
const ORCHESTRATION: &str = "LoadgenCancellable";
const ACTIVITY: &str = "LoadgenCancellableStep";
const OUTPUT: &str = "cancellation:done";
const SALT: u64 = 0xCA4C;

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "cancellation of running instances: the cancel work item against in-flight turns, timers and activities",
        options: &[
            OptionSpec { key: "share", default: "0.5", help: "share of instances the driver cancels (0-1 or 0%-100%)" },
            OptionSpec { key: "after", default: "100ms", help: "when the cancellation is sent after the start (0-1m)" },
            OptionSpec { key: "work", default: "500ms", help: "how long each instance waits on its timer (10ms-10m)" },
        ],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[],
    },
    register,
    build,
};

#[derive(Clone, Debug, PartialEq)]
struct Cancellation {
    share: f64,
    after: Duration,
    work: Duration,
    seed: u64,
}

/// One instance's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Input {
    work_ms: u64,
}

fn build(r: &Reader<'_>, ctx: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let share = r.share("share")?;
    let after = r.duration("after", Duration::ZERO, Duration::from_secs(60))?;
    let work = r.duration("work", Duration::from_millis(10), Duration::from_secs(600))?;
    Ok(Arc::new(Cancellation { share, after, work, seed: ctx.seed }))
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let i: Input = super::input(NAME, &input)?;
        ctx.schedule_timer(Duration::from_millis(i.work_ms)).await;
        ctx.schedule_activity(ACTIVITY, String::new()).await?;
        Ok(OUTPUT.to_string())
    });
    r.activity(NAME, ACTIVITY, |_ctx, _input: String| async move { Ok(String::new()) });
}

impl Cancellation {
    fn cancelled(&self, at: At) -> bool {
        at.draw(self.seed, SALT) < self.share
    }
}

impl Scenario for Cancellation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, at: At) -> Start {
        let hooks = if self.cancelled(at) {
            vec![Hook {
                after: self.after,
                action: Action::Cancel { reason: "cancelled by the load generator".into() },
            }]
        } else {
            Vec::new()
        };
        let input = super::to_input(&Input { work_ms: self.work.as_millis() as u64 });
        Start { scenario: NAME, orchestration: ORCHESTRATION, input, hooks, facts: Vec::new() }
    }

    fn expect(&self, at: At, _: &Facts) -> Expect {
        if self.cancelled(at) {
            // Cancelled or finished first: the history depends on which won.
            Expect {
                scenario: NAME,
                outcome: Outcome::CompletedOrCancelled(Output::Exact(OUTPUT.into())),
                executions: Count::Exactly(1),
                events: vec![("OrchestrationStarted", Count::Exactly(1)), ("TimerCreated", Count::Exactly(1))],
                children: None,
            }
        } else {
            Expect::completed(NAME, OUTPUT).with_events(&[
                ("TimerCreated", 1),
                ("TimerFired", 1),
                ("ActivityCompleted", 1),
                ("OrchestrationCompleted", 1),
            ])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn cancelled_instances_get_a_cancel_hook() {
        let ctx = Context { run_id: "r".into(), seed: 3, agent: 1, agents: 2 };
        let opts: Options = [("share".to_string(), "1".to_string())].into();
        let b = build(NAME, &opts, &ctx).expect("valid");
        let s = b.scenario.start(At { agent: 1, seq: 0 });
        assert_eq!(s.hooks.len(), 1);
        assert!(matches!(s.hooks[0].action, Action::Cancel { .. }));
        let none = build(NAME, &[("share".to_string(), "0".to_string())].into(), &ctx).expect("valid");
        assert!(none.scenario.start(At { agent: 1, seq: 0 }).hooks.is_empty());
    }
}
