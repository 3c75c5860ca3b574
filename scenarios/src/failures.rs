//! `failures`: a configured share of orchestrations fails by design with an
//! application error (an activity that fails, the orchestration returning
//! its error). These expected failures are counted apart: they do not fail
//! the success gate; an instance that completes instead, or fails with
//! another error, does. Which instances fail is drawn from the run's seed.

use std::sync::Arc;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{
    At, Context, Entry, Expect, Facts, Info, OptionSpec, Outcome, Output, Reader, Registrar, Scenario, ScenarioError,
    Start,
};

const NAME: &str = "failures";
const ORCHESTRATION: &str = "LoadgenFailures";
const ACTIVITY: &str = "LoadgenMaybeFail";
/// The start of every designed failure's message.
const MESSAGE: &str = "expected failure";
const SALT: u64 = 0xFA11;

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "application failures by design, counted apart from unexpected ones (which still fail the run)",
        options: &[OptionSpec {
            key: "share",
            default: "0.2",
            help: "share of orchestrations that fail by design (0-1, or 0%-100%)",
        }],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[],
    },
    register,
    build,
};

#[derive(Clone, Debug, PartialEq)]
struct Failures {
    share: f64,
    seed: u64,
}

/// One instance's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Input {
    fail: bool,
}

fn build(r: &Reader<'_>, ctx: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    Ok(Arc::new(Failures { share: r.share("share")?, seed: ctx.seed }))
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let i: Input = super::input(NAME, &input)?;
        match ctx.schedule_activity(ACTIVITY, super::to_input(&i)).await {
            Ok(_) => Ok("failures:ok".to_string()),
            Err(e) => Err(format!("{MESSAGE}: {e}")),
        }
    });
    r.activity(NAME, ACTIVITY, |_ctx, input: String| async move {
        let i: Input = super::input(NAME, &input)?;
        if i.fail { Err("this activity fails by design".to_string()) } else { Ok(String::new()) }
    });
}

impl Failures {
    fn fails(&self, at: At) -> bool {
        at.draw(self.seed, SALT) < self.share
    }
}

impl Scenario for Failures {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, at: At) -> Start {
        let input = super::to_input(&Input { fail: self.fails(at) });
        Start::plain(NAME, ORCHESTRATION, input)
    }

    fn expect(&self, at: At, _: &Facts) -> Expect {
        if self.fails(at) {
            let mut e = Expect::completed(NAME, "").with_events(&[
                ("ActivityScheduled", 1),
                ("ActivityFailed", 1),
                ("OrchestrationFailed", 1),
            ]);
            e.outcome = Outcome::Failed { category: "application", message: Output::Prefix(MESSAGE.into()) };
            e
        } else {
            Expect::completed(NAME, "failures:ok").with_events(&[
                ("ActivityScheduled", 1),
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
    fn the_share_that_fails_follows_the_seed() {
        let ctx = Context { run_id: "r".into(), seed: 9, agent: 0, agents: 1 };
        let opts: Options = [("share".to_string(), "25%".to_string())].into();
        let b = build(NAME, &opts, &ctx).expect("valid");
        let failing = (0..4000)
            .filter(|&seq| b.scenario.expect(At { agent: 0, seq }, &Facts::new()).outcome.expects_failure())
            .count();
        assert!((900..1100).contains(&failing), "{failing} of 4000");
        // The start and the expectation agree on which ones fail.
        for seq in 0..100 {
            let at = At { agent: 0, seq };
            let fails = b.scenario.start(at).input.contains("true");
            assert_eq!(fails, b.scenario.expect(at, &Facts::new()).outcome.expects_failure());
        }
        assert!(build(NAME, &[("share".to_string(), "1.5".to_string())].into(), &ctx).is_err());
    }
}
