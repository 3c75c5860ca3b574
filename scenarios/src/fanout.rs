//! `fanout`, the reference workload: fan out `tasks` activities that each
//! sleep `activity_delay`, then join. One orchestration turn schedules N work
//! items, N worker fetches and acks follow, and the completions come back as
//! orchestrator messages that contend for the same instance lock. The same
//! shape as duroxide's `parallel_orchestrations` stress test, under names of
//! our own.

use std::sync::Arc;
use std::time::Duration;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{At, Context, Entry, Expect, Facts, Info, OptionSpec, Reader, Registrar, Scenario, ScenarioError, Start};

const NAME: &str = "fanout";
const ORCHESTRATION: &str = "LoadgenFanout";
const ACTIVITY: &str = "LoadgenFanoutTask";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "queues and instance locks: N activities scheduled in one turn, their completions contending for the instance",
        options: &[
            OptionSpec { key: "tasks", default: "5", help: "activities each orchestration fans out to (1-1000)" },
            OptionSpec { key: "activity_delay", default: "10ms", help: "how long each activity sleeps (0-10m)" },
        ],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[],
    },
    register,
    build,
};

/// Typed options; also the orchestration's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Fanout {
    tasks: u32,
    delay_ms: u64,
}

fn build(r: &Reader<'_>, _: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let tasks = r.count("tasks", 1, 1000)? as u32;
    let delay = r.duration("activity_delay", Duration::ZERO, Duration::from_secs(600))?;
    Ok(Arc::new(Fanout { tasks, delay_ms: delay.as_millis() as u64 }))
}

fn output(tasks: u32) -> String {
    format!("fanout:{tasks}")
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let f: Fanout = super::input(NAME, &input)?;
        let delay = f.delay_ms.to_string();
        let work: Vec<_> = (0..f.tasks).map(|_| ctx.schedule_activity(ACTIVITY, delay.clone())).collect();
        let results = ctx.join(work).await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if failed == 0 { Ok(output(f.tasks)) } else { Err(format!("{failed} of {} tasks failed", f.tasks)) }
    });
    r.activity(NAME, ACTIVITY, |_ctx, input: String| async move {
        let ms: u64 = input.parse().map_err(|e| format!("fanout task input {input:?}: {e}"))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(input)
    });
}

impl Scenario for Fanout {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        Start::plain(NAME, ORCHESTRATION, super::to_input(self))
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        let n = u64::from(self.tasks);
        Expect::completed(NAME, output(self.tasks)).with_events(&[
            ("OrchestrationStarted", 1),
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
    fn options_parse_with_defaults_and_bounds() {
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let set =
            |pairs: &[(&str, &str)]| -> Options { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let b = build(NAME, &set(&[("tasks", "3"), ("activity_delay", "5ms")]), &ctx).expect("valid");
        let s = b.scenario.start(At { agent: 0, seq: 0 });
        assert_eq!(s.input, r#"{"tasks":3,"delay_ms":5}"#);
        assert_eq!(b.describe(9), "fanout activity_delay=5ms tasks=3 seed=9");
        let e = b.scenario.expect(At { agent: 0, seq: 0 }, &Facts::new());
        assert_eq!(e.events[1], ("ActivityScheduled", super::super::Count::Exactly(3)));
        let d = build(NAME, &Options::new(), &ctx).expect("defaults");
        assert_eq!(d.describe(1), "fanout activity_delay=10ms tasks=5 seed=1");
        for bad in [("tasks", "0"), ("tasks", "1001"), ("activity_delay", "11m"), ("activity_delay", "soon")] {
            assert!(build(NAME, &set(&[bad]), &ctx).is_err(), "{bad:?}");
        }
    }
}
