//! `clock-skew`: shift one agent's wall clock by `offset` (ahead with `+`,
//! behind with `-`) for the fault's duration, or until the run ends. The
//! agent runs under libfaketime (`--clock-control`, which the local launcher
//! passes to the agents a schedule skews) and writes the offset to its own
//! control file; monotonic time stays true. Releases of duroxide-pg that
//! compare lock expiry against the worker's own clock hand a skewed
//! worker's view of "expired" to the fetch (duroxide-pg #29, fixed in
//! 0.1.38), which is what this kind is for.

use std::time::Duration;

use async_trait::async_trait;
use loadgen_common::clock;
use serde::Deserialize;

use crate::faults::{AgentAction, Apply, Failure, Fault, FaultDef, Lasting, Reach, check_agent_index, read_fields};

pub const DEF: FaultDef = FaultDef {
    name: "clock-skew",
    about: "shift one agent's wall clock by `offset` (+15s ahead, -2s behind) for the duration (default: the rest of the run); agents need --clock-control (local ones get it)",
    fields: &[
        ("agent", "the agent's index (required)"),
        ("offset", "the shift, +/- up to 1h: +15s, -2.5s, -500ms (required)"),
    ],
    lasting: Lasting::Optional,
    parse: |fields| Ok(Box::new(read_fields::<ClockSkew>(fields)?)),
};

/// Bound on the agent's answer that it set its clock.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockSkew {
    agent: Option<u32>,
    offset: Option<String>,
}

impl ClockSkew {
    fn offset_us(&self) -> Result<i64, String> {
        match &self.offset {
            None => Err("needs an offset (+15s ahead, -2s behind)".into()),
            Some(text) => clock::parse_offset(text),
        }
    }
}

#[async_trait]
impl Fault for ClockSkew {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        format!("agent {}'s clock", self.agent.unwrap_or_default())
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        let Some(agent) = self.agent else {
            return Err(format!("{name} needs the agent whose clock it shifts (agent = N)"));
        };
        self.offset_us().map_err(|e| format!("{name}: {e}"))?;
        check_agent_index(name, agent, reach)?;
        if reach.local_agents.is_some() && clock::libfaketime().is_none() {
            return Err(format!("{name}: {}", clock::MISSING));
        }
        Ok(())
    }

    fn clock_agent(&self) -> Option<u32> {
        self.agent
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let agent = self.agent.unwrap_or_default();
        let offset_us = self.offset_us()?;
        let action = AgentAction::ClockSkew { offset_us, duration: cx.length, id: cx.id };
        if !cx.targets.tell_agent(agent, action) {
            return Err(format!("agent {agent} did not take the fault (no such agent, or its stream is closed)").into());
        }
        let detail = match tokio::time::timeout(ANSWER_TIMEOUT, cx.targets.agent_report(agent, cx.id)).await {
            Ok(Some(Ok(detail))) => detail,
            Ok(Some(Err(error))) => return Err(format!("agent {agent}: {error}").into()),
            Ok(None) => return Err(format!("agent {agent} ended before it set its clock").into()),
            Err(_) => return Err(format!("agent {agent} did not set its clock within {ANSWER_TIMEOUT:?}").into()),
        };
        // The agent sets it back after the duration (or at its release).
        tokio::time::sleep(cx.length).await;
        let held = if cx.length.is_zero() {
            "for the rest of the run".to_string()
        } else {
            format!("for {}", crate::faults::fmt_duration(cx.length))
        };
        Ok(format!("agent {agent}: {detail} {held}"))
    }
}
