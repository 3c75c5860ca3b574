//! What the relay kinds share (not a kind): one agent's traffic or every
//! agent's, and telling the agents.

use crate::faults::{AgentAction, Apply, Failure, Reach, check_agent_index};

pub(super) fn target(agent: Option<u32>) -> String {
    match agent {
        Some(i) => format!("agent {i}'s database traffic"),
        None => "every agent's database traffic".into(),
    }
}

pub(super) fn check(name: &str, agent: Option<u32>, reach: &Reach) -> Result<(), String> {
    agent.map_or(Ok(()), |i| check_agent_index(name, i, reach))
}

/// Tell the agent (or every agent) to apply `action`; how many took it.
pub(super) fn tell(cx: &Apply<'_>, agent: Option<u32>, action: AgentAction) -> Result<usize, Failure> {
    let targets: Vec<u32> = match agent {
        Some(i) => vec![i],
        None => (0..cx.targets.agent_count()).collect(),
    };
    let sent = targets.into_iter().filter(|&i| cx.targets.tell_agent(i, action.clone())).count();
    if sent == 0 {
        return Err("no agent took the fault (its stream is closed)".into());
    }
    Ok(sent)
}
