//! `large-payloads`: inputs, activity results and outputs drawn from a size
//! distribution (log-uniform between a minimum and a maximum), made of
//! pseudo-random hex so compression cannot shrink them. It stresses big
//! history rows and payload columns: what every turn reads and writes grows
//! with them. Bytes per second are reported; outputs are checked by md5.

use std::sync::Arc;

use duroxide::OrchestrationContext;
use serde::{Deserialize, Serialize};

use super::instance::mix;
use super::{At, Context, Entry, Expect, Facts, Info, OptionSpec, Reader, Registrar, Scenario, ScenarioError, Start};

const NAME: &str = "large-payloads";
const ORCHESTRATION: &str = "LoadgenPayloads";
const ACTIVITY: &str = "LoadgenPayloadEcho";
const SALT_INPUT: u64 = 0x1A;
const SALT_RESULT: u64 = 0x2B;
const SALT_OUTPUT: u64 = 0x3C;

pub const ENTRY: Entry = Entry {
    info: Info {
        name: NAME,
        stresses: "big payloads in history rows and columns: inputs, activity results and outputs from min_size to max_size (up to 10MB)",
        options: &[
            OptionSpec { key: "min_size", default: "1KB", help: "smallest payload (16B-10MB)" },
            OptionSpec {
                key: "max_size",
                default: "256KB",
                help: "largest payload (at least min_size, at most 10MB); sizes are log-uniform between",
            },
        ],
        orchestrations: &[ORCHESTRATION],
        history_metrics: &[],
    },
    register,
    build,
};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Payloads {
    min: u64,
    max: u64,
    seed: u64,
}

/// One instance's input: its own payload, and what to make of the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Input {
    payload: String,
    result_len: u64,
    result_seed: u64,
    output_len: u64,
    output_seed: u64,
}

/// An activity's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Make {
    len: u64,
    seed: u64,
}

fn build(r: &Reader<'_>, ctx: &Context) -> Result<Arc<dyn Scenario>, ScenarioError> {
    let limit = 10_000_000;
    let min = r.bytes("min_size", 16, limit)?;
    let max = r.bytes("max_size", 16, limit)?;
    if max < min {
        return Err(r.bad("max_size", &loadgen_common::units::format_bytes(max), "must be at least min_size"));
    }
    Ok(Arc::new(Payloads { min, max, seed: ctx.seed }))
}

/// `len` hex digits from splitmix64 seeded with `seed`: incompressible
/// beyond the hex encoding itself.
pub fn payload(len: u64, seed: u64) -> String {
    let mut out = String::with_capacity(len as usize + 16);
    let mut state = seed;
    while (out.len() as u64) < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out.push_str(&format!("{:016x}", mix(state)));
    }
    out.truncate(len as usize);
    out
}

fn register(r: &mut Registrar) {
    r.orchestration(ORCHESTRATION, |ctx: OrchestrationContext, input: String| async move {
        let i: Input = super::input(NAME, &input)?;
        let make = Make { len: i.result_len, seed: i.result_seed };
        let result = ctx.schedule_activity(ACTIVITY, super::to_input(&make)).await?;
        if result.len() as u64 != i.result_len {
            return Err(format!("activity result of {} bytes, {} expected", result.len(), i.result_len));
        }
        Ok(payload(i.output_len, i.output_seed))
    });
    r.activity(NAME, ACTIVITY, |_ctx, input: String| async move {
        let m: Make = super::input(NAME, &input)?;
        Ok(payload(m.len, m.seed))
    });
}

impl Payloads {
    /// A size drawn log-uniformly between min and max.
    fn size(&self, at: At, salt: u64) -> u64 {
        let (lo, hi) = ((self.min as f64).ln(), (self.max as f64).ln());
        (lo + (hi - lo) * at.draw(self.seed, salt)).exp().round().clamp(self.min as f64, self.max as f64) as u64
    }

    fn seed_of(&self, at: At, salt: u64) -> u64 {
        mix(self.seed ^ mix(u64::from(at.agent) ^ mix(at.seq ^ mix(salt))))
    }

    fn input(&self, at: At) -> Input {
        Input {
            payload: payload(self.size(at, SALT_INPUT), self.seed_of(at, SALT_INPUT)),
            result_len: self.size(at, SALT_RESULT),
            result_seed: self.seed_of(at, SALT_RESULT),
            output_len: self.size(at, SALT_OUTPUT),
            output_seed: self.seed_of(at, SALT_OUTPUT),
        }
    }
}

impl Scenario for Payloads {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, at: At) -> Start {
        let i = self.input(at);
        let bytes = i.payload.len() as u64 + i.result_len + i.output_len;
        Start {
            scenario: NAME,
            orchestration: ORCHESTRATION,
            input: super::to_input(&i),
            hooks: Vec::new(),
            facts: vec![("payload_bytes", bytes)],
        }
    }

    fn expect(&self, at: At, _: &Facts) -> Expect {
        let i = self.input(at);
        Expect::completed(NAME, payload(i.output_len, i.output_seed)).with_events(&[
            ("OrchestrationStarted", 1),
            ("ActivityScheduled", 1),
            ("ActivityCompleted", 1),
            ("OrchestrationCompleted", 1),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, build};
    use super::*;

    #[test]
    fn payloads_are_sized_between_the_bounds_and_deterministic() {
        assert_eq!(payload(40, 1).len(), 40);
        assert_eq!(payload(40, 1), payload(40, 1));
        assert_ne!(payload(40, 1), payload(40, 2));
        let ctx = Context { run_id: "r".into(), seed: 5, agent: 0, agents: 1 };
        let opts: Options =
            [("min_size", "1KB"), ("max_size", "64KB")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let b = build(NAME, &opts, &ctx).expect("valid");
        let p = Payloads { min: 1000, max: 64_000, seed: 5 };
        let sizes: Vec<u64> = (0..500).map(|seq| p.size(At { agent: 0, seq }, SALT_INPUT)).collect();
        assert!(sizes.iter().all(|s| (1000..=64_000).contains(s)));
        assert!(sizes.iter().any(|s| *s < 4000) && sizes.iter().any(|s| *s > 32_000), "log-uniform spread");
        let s = b.scenario.start(At { agent: 0, seq: 3 });
        assert!(s.facts[0].1 >= 3000);
        let bad: Options =
            [("min_size", "2MB"), ("max_size", "1MB")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(build(NAME, &bad, &ctx).is_err());
    }
}
