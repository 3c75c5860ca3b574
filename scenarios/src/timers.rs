//! `timers`: each orchestration waits on N durable timers, one after another
//! or all at once. It stresses the timer path: delayed visibility of
//! orchestrator messages and how late they are fetched. Timer lateness
//! (fired minus due) is read back from the history after the run.

use std::sync::Arc;
use std::time::Duration;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{
    At, Context, Entry, Expect, Facts, HistoryMetric, Info, MetricStart, OptionSpec, Reader, Registrar, Scenario,
    ScenarioError, Start,
};

const NAME: &str = "timers";
const ORCHESTRATION: &str = "LoadgenTimers";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "the timer queue: delayed visibility and how late due timers fire (timer lateness from the history)",
        options: &[
            OptionSpec { key: "timers", default: "3", help: "durable timers per orchestration (1-100)" },
            OptionSpec { key: "delay", default: "200ms", help: "each timer's duration (10ms-10m)" },
            OptionSpec {
                key: "mode",
                default: "sequential",
                help: "sequential (one after another) or parallel (joined)",
            },
        ],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[HistoryMetric { name: "timer lateness", event: "TimerFired", from: MetricStart::FireAt }],
    },
    register,
    build,
};

/// Typed options; also the orchestration's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Timers {
    timers: u32,
    delay_ms: u64,
    parallel: bool,
}

fn build(r: &Reader<'_>, _: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let timers = r.count("timers", 1, 100)? as u32;
    let delay = r.duration("delay", Duration::from_millis(10), Duration::from_secs(600))?;
    let parallel = r.choice("mode", &["sequential", "parallel"])? == "parallel";
    Ok(Arc::new(Timers { timers, delay_ms: delay.as_millis() as u64, parallel }))
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let t: Timers = super::input(NAME, &input)?;
        let delay = Duration::from_millis(t.delay_ms);
        if t.parallel {
            let all: Vec<_> = (0..t.timers).map(|_| ctx.schedule_timer(delay)).collect();
            ctx.join(all).await;
        } else {
            for _ in 0..t.timers {
                ctx.schedule_timer(delay).await;
            }
        }
        Ok(format!("timers:{}", t.timers))
    });
}

impl Scenario for Timers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        Start::plain(NAME, ORCHESTRATION, super::to_input(self))
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        let n = u64::from(self.timers);
        Expect::completed(NAME, format!("timers:{n}")).with_events(&[
            ("OrchestrationStarted", 1),
            ("TimerCreated", n),
            ("TimerFired", n),
            ("OrchestrationCompleted", 1),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn options_parse_with_defaults_and_bounds() {
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let set =
            |pairs: &[(&str, &str)]| -> Options { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let b = build(NAME, &set(&[("timers", "2"), ("mode", "parallel")]), &ctx).expect("valid");
        assert_eq!(b.scenario.start(At { agent: 0, seq: 0 }).input, r#"{"timers":2,"delay_ms":200,"parallel":true}"#);
        assert_eq!(b.describe(1), "timers delay=200ms mode=parallel timers=2 seed=1");
        for bad in [("timers", "0"), ("delay", "1ms"), ("mode", "random")] {
            assert!(build(NAME, &set(&[bad]), &ctx).is_err(), "{bad:?}");
        }
    }
}
