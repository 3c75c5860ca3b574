//! `sub-orchestrations`: a parent starts K children and joins them; with
//! depth D each child does the same, down to leaves that run one activity.
//! It stresses parent/child messages between instances (child started by
//! the parent's turn, completion delivered back to the parent), and the
//! audit accounts for every child (ids `<parent>::sub::<n>`).

use std::sync::Arc;
use std::time::Duration;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::{
    At, Context, Count, Entry, Expect, Facts, Info, OptionSpec, Reader, Registrar, Scenario, ScenarioError, Start,
};

const NAME: &str = "sub-orchestrations";
const PARENT: &str = "LoadgenSubParent";
const CHILD: &str = "LoadgenSubChild";
const LEAF_ACTIVITY: &str = "LoadgenSubLeaf";

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "parent/child messages between instances: children started by a turn, completions routed back",
        options: &[
            OptionSpec { key: "children", default: "3", help: "children of each parent (1-20)" },
            OptionSpec { key: "depth", default: "1", help: "levels of children (1-3); leaves run one activity" },
            OptionSpec { key: "activity_delay", default: "5ms", help: "each leaf activity's sleep (0-1m)" },
        ],
        orchestrations: &[PARENT, CHILD],
        history_metrics: &[],
    },
    register,
    build,
};

/// Typed options; with `below`, also each orchestration's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Subs {
    children: u32,
    /// Levels of children below this orchestration.
    below: u32,
    delay_ms: u64,
}

fn build(r: &Reader<'_>, _: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let children = r.count("children", 1, 20)? as u32;
    let depth = r.count("depth", 1, 3)? as u32;
    let delay = r.duration("activity_delay", Duration::ZERO, Duration::from_secs(60))?;
    Ok(Arc::new(Subs { children, below: depth, delay_ms: delay.as_millis() as u64 }))
}

/// Instances below a node with `below` levels under it.
fn descendants(children: u32, below: u32) -> u64 {
    if below == 0 { 0 } else { u64::from(children) * (1 + descendants(children, below - 1)) }
}

/// One node: children when there are levels below, the leaf's activity otherwise.
async fn node(ctx: OrchestrationContext, s: Subs) -> Result<u64, String> {
    if s.below == 0 {
        ctx.schedule_activity(LEAF_ACTIVITY, s.delay_ms.to_string()).await?;
        return Ok(0);
    }
    let child = Subs { below: s.below - 1, ..s.clone() };
    let input = super::to_input(&child);
    let calls: Vec<_> = (0..s.children).map(|_| ctx.schedule_sub_orchestration(CHILD, input.clone())).collect();
    let mut total = 0;
    for r in ctx.join(calls).await {
        let out = r?;
        let n: u64 = out.strip_prefix("child:").and_then(|n| n.parse().ok()).ok_or(format!("child output {out:?}"))?;
        total += 1 + n;
    }
    Ok(total)
}

fn register(r: &mut Registrar) {
    r.orchestration(PARENT, |ctx: OrchestrationContext, input: String| async move {
        let s: Subs = super::input(NAME, &input)?;
        Ok(format!("subs:{}", node(ctx, s).await?))
    });
    r.orchestration(CHILD, |ctx: OrchestrationContext, input: String| async move {
        let s: Subs = super::input(NAME, &input)?;
        Ok(format!("child:{}", node(ctx, s).await?))
    });
    r.activity(NAME, LEAF_ACTIVITY, |_ctx, input: String| async move {
        let ms: u64 = input.parse().map_err(|e| format!("leaf input {input:?}: {e}"))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(String::new())
    });
}

impl Subs {
    /// What a node with `below` levels under it must end as.
    fn expect_node(&self, below: u32, root: bool) -> Expect {
        let output = if root {
            format!("subs:{}", descendants(self.children, below))
        } else {
            format!("child:{}", descendants(self.children, below))
        };
        let k = u64::from(self.children);
        if below == 0 {
            return Expect::completed(NAME, output).with_events(&[("ActivityScheduled", 1), ("ActivityCompleted", 1)]);
        }
        let mut e = Expect::completed(NAME, output)
            .with_events(&[("SubOrchestrationScheduled", k), ("SubOrchestrationCompleted", k)]);
        e.children = Some((k, Box::new(self.expect_node(below - 1, false))));
        e
    }
}

impl Scenario for Subs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, _: At) -> Start {
        Start::plain(NAME, PARENT, super::to_input(self))
    }

    fn expect(&self, _: At, _: &Facts) -> Expect {
        let mut e = self.expect_node(self.below, true);
        e.executions = Count::Exactly(1);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn the_tree_is_counted_level_by_level() {
        assert_eq!((descendants(3, 1), descendants(3, 2), descendants(2, 3)), (3, 12, 14));
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let opts: Options =
            [("children", "2"), ("depth", "2")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let b = build(NAME, &opts, &ctx).expect("valid");
        let e = b.scenario.expect(At { agent: 0, seq: 0 }, &Facts::new());
        assert_eq!(e.outcome, super::super::Outcome::Completed(super::super::Output::Exact("subs:6".into())));
        assert_eq!(e.descendants(), 6);
        assert!(build(NAME, &[("depth".to_string(), "4".to_string())].into(), &ctx).is_err());
    }
}
