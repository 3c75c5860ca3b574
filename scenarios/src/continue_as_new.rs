//! `continue-as-new`: each orchestration runs G generations, each doing a
//! small activity and continuing as new with the count left. It stresses
//! execution rollover: a new execution row per generation, the history of
//! each kept apart, the instance's current execution moved on.

use std::sync::Arc;
use std::time::Duration;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{
    At, Context, Count, Entry, Expect, Facts, Info, OptionSpec, Reader, Registrar, Scenario, ScenarioError, Start,
};

const NAME: &str = "continue-as-new";
const ORCHESTRATION: &str = "LoadgenGenerations";
const ACTIVITY: &str = "LoadgenGeneration";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "execution rollover: G continue-as-new generations per instance, one execution row each",
        options: &[
            OptionSpec {
                key: "generations",
                default: "3",
                help: "continue-as-new generations (1-100); G+1 executions",
            },
            OptionSpec { key: "activity_delay", default: "5ms", help: "each generation's activity sleep (0-1m)" },
        ],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[],
    },
    register,
    build,
};

/// Typed options; with `left`, also each generation's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Generations {
    generations: u32,
    left: u32,
    delay_ms: u64,
}

fn build(r: &Reader<'_>, _: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let generations = r.count("generations", 1, 100)? as u32;
    let delay = r.duration("activity_delay", Duration::ZERO, Duration::from_secs(60))?;
    Ok(Arc::new(Generations { generations, left: generations, delay_ms: delay.as_millis() as u64 }))
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let g: Generations = super::input(NAME, &input)?;
        ctx.schedule_activity(ACTIVITY, g.delay_ms.to_string()).await?;
        if g.left > 0 {
            let next = Generations { left: g.left - 1, ..g.clone() };
            return ctx.continue_as_new(super::to_input(&next)).await;
        }
        Ok(format!("generations:{}", g.generations))
    });
    r.activity(NAME, ACTIVITY, |_ctx, input: String| async move {
        let ms: u64 = input.parse().map_err(|e| format!("generation input {input:?}: {e}"))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(String::new())
    });
}

impl Scenario for Generations {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        Start::plain(NAME, ORCHESTRATION, super::to_input(self))
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        let g = u64::from(self.generations);
        let mut e = Expect::completed(NAME, format!("generations:{g}")).with_events(&[
            ("OrchestrationStarted", g + 1),
            ("ActivityScheduled", g + 1),
            ("ActivityCompleted", g + 1),
            ("OrchestrationContinuedAsNew", g),
            ("OrchestrationCompleted", 1),
        ]);
        e.executions = Count::Exactly(g + 1);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn g_generations_are_g_plus_one_executions() {
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let opts: Options = [("generations".to_string(), "4".to_string())].into();
        let b = build(NAME, &opts, &ctx).expect("valid");
        let e = b.scenario.expect(At { agent: 0, seq: 0 }, &Facts::new());
        assert_eq!(e.executions, Count::Exactly(5));
        assert!(build(NAME, &[("generations".to_string(), "0".to_string())].into(), &ctx).is_err());
    }
}
