//! `fanout`, the reference workload: fan out `tasks_per_instance` activities
//! that each sleep `activity_delay`, then join. It stresses the provider's
//! queues and locks: one orchestration turn schedules N work items, N worker
//! fetches and acks follow, and the completions come back as orchestrator
//! messages that contend for the same instance lock. Equivalent in shape to
//! duroxide's `parallel_orchestrations` stress test, under names of our own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use duroxide::runtime::registry::ActivityRegistry;
use duroxide::{ActivityContext, OrchestrationContext, OrchestrationRegistry};
use loadgen_common::proto;

use super::{Scenario, ScenarioError};

/// Wire name.
pub const NAME: &str = "fanout";
const ORCHESTRATION: &str = "LoadgenFanout";
const ACTIVITY: &str = "LoadgenFanoutTask";
/// Upper bound on the fan-out width: a single turn that schedules more work
/// items than this is a different experiment (large histories).
pub const MAX_TASKS: u32 = 1000;
/// Upper bound on the activity sleep.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// Typed options of the fan-out scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fanout {
    pub tasks_per_instance: u32,
    pub activity_delay: Duration,
}

impl Default for Fanout {
    fn default() -> Self {
        Fanout { tasks_per_instance: 5, activity_delay: Duration::from_millis(10) }
    }
}

impl Fanout {
    /// Read and check the options from the wire.
    pub fn from_spec(spec: &proto::Scenario) -> Result<Self, ScenarioError> {
        let bad = |detail: String| ScenarioError::InvalidOption { scenario: NAME, detail };
        if spec.tasks_per_instance == 0 || spec.tasks_per_instance > MAX_TASKS {
            return Err(bad(format!("tasks_per_instance {} is outside 1..={MAX_TASKS}", spec.tasks_per_instance)));
        }
        let activity_delay = Duration::from_millis(spec.activity_delay_ms);
        if activity_delay > MAX_DELAY {
            return Err(bad(format!("activity delay {activity_delay:?} is above {MAX_DELAY:?}")));
        }
        Ok(Fanout { tasks_per_instance: spec.tasks_per_instance, activity_delay })
    }
}

/// The orchestration: schedule every task, join, report how many succeeded.
async fn orchestration(ctx: OrchestrationContext, input: String) -> Result<String, String> {
    let tasks: u32 = input.trim().parse().map_err(|e| format!("fanout input {input:?}: {e}"))?;
    let work: Vec<_> = (0..tasks).map(|i| ctx.schedule_activity(ACTIVITY, i.to_string())).collect();
    let results = ctx.join(work).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    if ok == tasks as usize {
        Ok(output(tasks))
    } else {
        Err(format!("{} of {tasks} tasks failed", tasks as usize - ok))
    }
}

fn output(tasks: u32) -> String {
    format!("fanout:{tasks}")
}

impl Scenario for Fanout {
    fn name(&self) -> &'static str {
        NAME
    }

    fn orchestration(&self) -> &'static str {
        ORCHESTRATION
    }

    fn input(&self) -> String {
        self.tasks_per_instance.to_string()
    }

    fn expected_output(&self) -> String {
        output(self.tasks_per_instance)
    }

    fn activities_per_instance(&self) -> u64 {
        u64::from(self.tasks_per_instance)
    }

    fn registries(&self, executed: Arc<AtomicU64>) -> (ActivityRegistry, OrchestrationRegistry) {
        let delay = self.activity_delay;
        let activities = ActivityRegistry::builder()
            .register(ACTIVITY, move |_ctx: ActivityContext, input: String| {
                let executed = Arc::clone(&executed);
                async move {
                    tokio::time::sleep(delay).await;
                    executed.fetch_add(1, Ordering::Relaxed);
                    Ok(input)
                }
            })
            .build();
        let orchestrations = OrchestrationRegistry::builder().register(ORCHESTRATION, orchestration).build();
        (activities, orchestrations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tasks: u32, delay_ms: u64) -> proto::Scenario {
        proto::Scenario { name: NAME.into(), tasks_per_instance: tasks, activity_delay_ms: delay_ms }
    }

    #[test]
    fn options_parse_and_are_bounded() {
        let f = Fanout::from_spec(&spec(3, 5)).expect("valid");
        assert_eq!(f, Fanout { tasks_per_instance: 3, activity_delay: Duration::from_millis(5) });
        assert_eq!((f.input(), f.expected_output(), f.activities_per_instance()), ("3".into(), "fanout:3".into(), 3));
        assert!(Fanout::from_spec(&spec(0, 5)).is_err());
        assert!(Fanout::from_spec(&spec(MAX_TASKS + 1, 5)).is_err());
        assert!(Fanout::from_spec(&spec(1, 601_000)).is_err());
        assert_eq!(Fanout::default().tasks_per_instance, 5);
    }
}
