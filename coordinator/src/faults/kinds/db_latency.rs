//! `db-latency`: add a delay each way to an agent's (or every agent's)
//! database traffic for the fault's duration, through the agent's relay: a
//! database that slows down, or a network path that does. The agents apply
//! and undo it, so it reaches remote agents too.

use std::time::Duration;

use async_trait::async_trait;
use loadgen_common::units::opt_duration_text;
use serde::Deserialize;

use super::relay;
use crate::faults::{AgentAction, Apply, Failure, Fault, FaultDef, Lasting, Reach, fmt_duration, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "db-latency",
    about: "add `delay` each way to agents' database traffic for the duration (through their relays)",
    fields: &[
        ("delay", "the delay added each way, 1ms to 10s (required)"),
        ("agent", "one agent's traffic (default every agent's)"),
    ],
    lasting: Lasting::Required,
    parse: |fields| Ok(Box::new(read_fields::<DbLatency>(fields)?)),
};

/// The most a relay delays each way: past it the fault is an outage
/// (db-partition says so honestly).
const LONGEST_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DbLatency {
    #[serde(default, with = "opt_duration_text")]
    delay: Option<Duration>,
    agent: Option<u32>,
}

#[async_trait]
impl Fault for DbLatency {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        relay::target(self.agent)
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        match self.delay {
            None => return Err(format!("{name} needs a delay (added each way)")),
            Some(d) if d.is_zero() || d > LONGEST_DELAY => {
                return Err(format!("{name}: the delay must be between 1ms and {}", fmt_duration(LONGEST_DELAY)));
            }
            Some(_) => {}
        }
        relay::check(name, self.agent, reach)
    }

    fn needs_relay(&self) -> bool {
        true
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let delay = self.delay.unwrap_or_default();
        let action = AgentAction::RelayLatency { delay, duration: cx.length };
        let sent = relay::tell(&cx, self.agent, action)?;
        // The agents undo it after the duration; the fault lasts that long.
        tokio::time::sleep(cx.length).await;
        Ok(format!("{sent} agent(s): +{} each way for {}", fmt_duration(delay), fmt_duration(cx.length)))
    }
}
