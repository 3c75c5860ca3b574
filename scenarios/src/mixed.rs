//! `mixed`: a weighted mix of the other scenarios, each instance's scenario
//! drawn from the run's seed (the same seed gives the same instances).
//! Options: `weights` (scenario:weight,...) and any option of a part as
//! `part.key` (for example `timers.delay=1s`). A part without instances of
//! its own (hot-instances) runs its background alongside.

use std::sync::Arc;

use super::{
    At, Background, Built, Context, Entry, Expect, Facts, Info, OptionSpec, Options, Reader, Registrar, Scenario,
    ScenarioError, Start,
};

const NAME: &str = "mixed";
const SALT: u64 = 0x313D;

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "everything at once: a seeded, weighted mix of the other scenarios on the same schema",
        options: &[OptionSpec {
            key: "weights",
            default: "fanout:4,timers:2,events:2,sub-orchestrations:1,continue-as-new:1,retries:1,failures:1,cancellation:1,large-payloads:1",
            help: "scenario:weight,...; any part's option as part.key=value",
        }],
        orchestrations: &[],
        history_metrics: &[],
    },
    register,
    build,
};

#[derive(Debug)]
struct Mixed {
    /// Parts with instances, with their cumulative weights.
    parts: Vec<(u64, Built)>,
    total: u64,
    /// Parts without instances of their own (their background runs).
    background: Vec<Built>,
    seed: u64,
}

/// The parts register themselves: nothing of its own.
fn register(_: &mut Registrar) {}

fn build(r: &Reader<'_>, ctx: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let text = r.raw("weights");
    let mut parts = Vec::new();
    let mut background = Vec::new();
    let mut total = 0;
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, weight) = item.split_once(':').unwrap_or((item, "1"));
        let name = name.trim();
        let weight: u64 = weight
            .trim()
            .parse()
            .map_err(|_| r.bad("weights", &text, format!("weight of {name} is not a whole number")))?;
        if name == NAME {
            return Err(r.bad("weights", &text, "a mix cannot contain itself"));
        }
        if parts.iter().any(|(_, b): &(u64, Built)| b.scenario.name() == name)
            || background.iter().any(|b: &Built| b.scenario.name() == name)
        {
            return Err(r.bad("weights", &text, format!("{name} is listed twice")));
        }
        if weight == 0 {
            continue;
        }
        // The part's own options, given as part.key.
        let own: Options = r.scoped(name);
        let built = super::build(name, &own, ctx)?;
        if built.scenario.has_instances() {
            total += weight;
            parts.push((total, built));
        } else {
            background.push(built);
        }
    }
    if parts.is_empty() {
        return Err(r.bad("weights", &text, "no scenario with instances has a weight above 0"));
    }
    Ok(Arc::new(Mixed { parts, total, background, seed: ctx.seed }))
}

impl Mixed {
    /// The part instance `at` belongs to.
    fn part(&self, at: At) -> &dyn Scenario {
        let x = (at.draw(self.seed, SALT) * self.total as f64) as u64;
        let i = self.parts.iter().position(|(upto, _)| x < *upto).unwrap_or(self.parts.len() - 1);
        self.parts[i].1.scenario.as_ref()
    }
}

impl Scenario for Mixed {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, at: At) -> Start {
        self.part(at).start(at)
    }

    fn scenario_of(&self, at: At) -> &'static str {
        self.part(at).scenario_of(at)
    }

    fn expect(&self, at: At, facts: &Facts) -> Expect {
        self.part(at).expect(at, facts)
    }

    fn background(&self) -> Option<Box<dyn Background>> {
        self.background.iter().find_map(|b| b.scenario.background())
    }

    fn extra_instances(&self, facts: &Facts) -> Vec<(String, Expect)> {
        self.parts
            .iter()
            .map(|(_, b)| b)
            .chain(&self.background)
            .flat_map(|b| b.scenario.extra_instances(facts))
            .collect()
    }

    fn parts(&self) -> Vec<&'static Info> {
        self.parts
            .iter()
            .map(|(_, b)| b)
            .chain(&self.background)
            .filter_map(|b| super::find(b.scenario.name()).ok().map(|e| &e.info))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::build;
    use super::*;
    use std::collections::BTreeMap;

    fn counts(seed: u64, weights: &str) -> BTreeMap<&'static str, u32> {
        let ctx = Context { run_id: "r".into(), seed, agent: 0, agents: 2 };
        let opts: Options = [("weights".to_string(), weights.to_string())].into();
        let b = build(NAME, &opts, &ctx).expect("mix");
        let mut out = BTreeMap::new();
        for agent in 0..2 {
            for seq in 0..3000 {
                *out.entry(b.scenario.scenario_of(At { agent, seq })).or_default() += 1;
            }
        }
        out
    }

    #[test]
    fn a_seed_fixes_every_instance_s_scenario() {
        let a = counts(42, "fanout:3,timers:1");
        assert_eq!(a, counts(42, "fanout:3,timers:1"), "same seed, same picks");
        assert_ne!(a, counts(43, "fanout:3,timers:1"));
        let (f, t) = (a["fanout"], a["timers"]);
        assert!((4300..4700).contains(&f) && f + t == 6000, "{a:?}");
    }

    #[test]
    fn parts_take_their_own_options_and_bad_mixes_are_refused() {
        let ctx = Context { run_id: "r".into(), seed: 1, agent: 0, agents: 1 };
        let opts: Options = [("weights", "timers:1"), ("timers.timers", "7")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b = build(NAME, &opts, &ctx).expect("scoped option");
        assert!(b.scenario.start(At { agent: 0, seq: 0 }).input.contains("\"timers\":7"));
        for bad in ["mixed:1", "fanout:x", "nope:1", "fanout:0", "fanout:1,fanout:2"] {
            let opts: Options = [("weights".to_string(), bad.to_string())].into();
            assert!(build(NAME, &opts, &ctx).is_err(), "{bad}");
        }
        let typo: Options = [("weights", "timers:1"), ("timers.tmers", "7")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let e = build(NAME, &typo, &ctx).expect_err("typo in a part");
        assert!(e.to_string().contains("scenario timers has no option \"tmers\""), "{e}");
        let with_hot: Options = [("weights".to_string(), "fanout:1,hot-instances:1".to_string())].into();
        let b = build(NAME, &with_hot, &ctx).expect("hot background");
        assert!(b.scenario.background().is_some());
    }
}
