//! `retries`: each orchestration runs S steps in turn, each an activity
//! under duroxide's retry policy that fails deterministically for its first
//! k attempts. It stresses activity failure and re-scheduling: failed work
//! items, backoff timers, and the same activity scheduled again. The audit
//! checks the attempt counts in the history.
//!
//! An attempt learns its number from the instance's own history (the
//! attempts scheduled so far with its input), so the failures are the same
//! whichever runtime, in whichever process, runs each attempt.

use std::sync::Arc;
use std::time::Duration;

use duroxide::{ActivityContext, BackoffStrategy, OrchestrationContext, RetryPolicy};
use serde::{Deserialize, Serialize};

use super::{At, Context, Entry, Expect, Facts, Info, OptionSpec, Reader, Registrar, Scenario, ScenarioError, Start};

const NAME: &str = "retries";
const ORCHESTRATION: &str = "LoadgenRetries";
const ACTIVITY: &str = "LoadgenFlaky";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "activity failure and retry: failed work items, backoff timers, the activity scheduled again",
        options: &[
            OptionSpec {
                key: "steps",
                default: "2",
                help: "retried activities per orchestration, one after another (1-20)",
            },
            OptionSpec { key: "failures", default: "2", help: "attempts that fail before one succeeds (0-10)" },
            OptionSpec {
                key: "max_attempts",
                default: "4",
                help: "the retry policy's attempts (more than failures, at most 20)",
            },
            OptionSpec { key: "backoff", default: "50ms", help: "fixed backoff between attempts (1ms-1m)" },
        ],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[],
    },
    register,
    build,
};

/// Typed options; also the orchestration's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Retries {
    steps: u32,
    failures: u32,
    max_attempts: u32,
    backoff_ms: u64,
}

/// An attempt's input: which step, and how many attempts fail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Attempt {
    step: u32,
    failures: u32,
}

fn build(r: &Reader<'_>, _: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let steps = r.count("steps", 1, 20)? as u32;
    let failures = r.count("failures", 0, 10)? as u32;
    let max_attempts = r.count("max_attempts", 1, 20)? as u32;
    if max_attempts <= failures {
        return Err(r.bad(
            "max_attempts",
            &max_attempts.to_string(),
            format!("must be more than failures ({failures})"),
        ));
    }
    let backoff = r.duration("backoff", Duration::from_millis(1), Duration::from_secs(60))?;
    Ok(Arc::new(Retries { steps, failures, max_attempts, backoff_ms: backoff.as_millis() as u64 }))
}

/// The number of this attempt: the attempts scheduled so far with its input.
async fn attempt_number(ctx: &ActivityContext, input: &str) -> Result<u64, String> {
    let history = ctx
        .get_client()
        .read_execution_history(ctx.instance_id(), ctx.execution_id())
        .await
        .map_err(|e| format!("reading the history: {e}"))?;
    Ok(history
        .iter()
        .filter(|e| {
            matches!(&e.kind, duroxide::EventKind::ActivityScheduled { name, input: i, .. } if name == ACTIVITY && i == input)
        })
        .count() as u64)
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let t: Retries = super::input(NAME, &input)?;
        let policy = RetryPolicy::new(t.max_attempts)
            .with_backoff(BackoffStrategy::Fixed { delay: Duration::from_millis(t.backoff_ms) });
        for step in 0..t.steps {
            let attempt = super::to_input(&Attempt { step, failures: t.failures });
            ctx.schedule_activity_with_retry(ACTIVITY, attempt, policy.clone()).await?;
        }
        Ok(format!("retries:{}", t.steps))
    });
    r.activity(NAME, ACTIVITY, |ctx: ActivityContext, input: String| async move {
        let a: Attempt = super::input(NAME, &input)?;
        let n = attempt_number(&ctx, &input).await?;
        if n <= u64::from(a.failures) {
            Err(format!("flaky by design: step {} attempt {n} of {} failing", a.step, a.failures))
        } else {
            Ok(format!("step {} attempt {n}", a.step))
        }
    });
}

impl Scenario for Retries {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        Start::plain(NAME, ORCHESTRATION, super::to_input(self))
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        let (s, k) = (u64::from(self.steps), u64::from(self.failures));
        Expect::completed(NAME, format!("retries:{s}")).with_events(&[
            ("ActivityScheduled", s * (k + 1)),
            ("ActivityFailed", s * k),
            ("ActivityCompleted", s),
            ("TimerCreated", s * k),
            ("TimerFired", s * k),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn attempts_must_outnumber_failures() {
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let set =
            |pairs: &[(&str, &str)]| -> Options { pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
        let b = build(NAME, &set(&[("steps", "3"), ("failures", "1")]), &ctx).expect("valid");
        let e = b.scenario.expect(At { agent: 0, seq: 0 }, &Facts::new());
        assert_eq!(e.events[0], ("ActivityScheduled", super::super::Count::Exactly(6)));
        let err = build(NAME, &set(&[("failures", "4"), ("max_attempts", "4")]), &ctx).expect_err("too few attempts");
        assert!(err.to_string().contains("must be more than failures (4)"), "{err}");
    }
}
