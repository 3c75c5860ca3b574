//! The load a profile asks for over time: its stages (or a constant rate or
//! budget) resolved into the one load type both binaries share
//! ([`loadgen_common::load::Load`]), and the fields the rest of the plan
//! reads from them.

use loadgen_common::load::{Load, Loop};
use loadgen_common::stages::StagePlan;

use super::profile::{ConfigError, Profile, stages_are_rates};

impl Profile {
    /// Resolve `stages` into the fields the rest of the plan reads: the
    /// duration of explicit stages, and the peak as the rate (open loop) or
    /// the budget (closed loop). Call after every override.
    pub fn settle_stages(&mut self) -> Result<(), ConfigError> {
        let Some(text) = self.stages.clone() else { return Ok(()) };
        let bad = |detail: String| ConfigError::Stages { value: text.clone(), detail };
        let open = stages_are_rates(&text);
        let plan = StagePlan::parse(&text, open, self.duration).map_err(|e| bad(e.to_string()))?;
        if !StagePlan::is_shape(&text) {
            self.duration = plan.duration();
        }
        if plan.peak() <= 0.0 {
            return Err(bad("the plan never starts anything (its peak is 0)".into()));
        }
        if open {
            self.rate = Some(plan.peak());
        } else {
            self.rate = None;
            self.max_concurrent = plan.peak() as u64;
        }
        Ok(())
    }

    /// The run's load, cluster-wide: the stages, or a constant rate or
    /// budget, open or closed loop, with its in-flight cap. The stages were
    /// checked by [`Profile::settle_stages`]; text that no longer parses (a
    /// profile changed after it) is an error, never a silent constant load.
    pub fn load(&self) -> Result<Load, ConfigError> {
        let (plan, open, staged) = match self.stages.as_deref() {
            Some(text) => {
                let open = stages_are_rates(text);
                let plan = StagePlan::parse(text, open, self.duration)
                    .map_err(|e| ConfigError::Stages { value: text.to_string(), detail: e.to_string() })?;
                (plan, open, true)
            }
            None => match self.rate {
                Some(rate) => (StagePlan::constant(rate, self.duration), true, false),
                None => (StagePlan::constant(self.max_concurrent as f64, self.duration), false, false),
            },
        };
        let kind = if open { Loop::Open(self.arrival.resolved()) } else { Loop::Closed };
        let max_in_flight = if open { self.cap_at(plan.peak()) } else { self.max_concurrent };
        Ok(Load { kind, plan, max_in_flight, staged })
    }
}
