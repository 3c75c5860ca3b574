//! What makes agents unfit for a run, found at their Hello: another
//! protocol revision or duroxide-pg build, the same process twice, or a clock
//! a fault must shift that cannot be shifted. Waiting cannot cure any of it.

use std::collections::HashSet;

use super::{AgentLink, PROTOCOL_VERSION};
use crate::error::CoordinatorError;

/// Refuse an agent that can never take part in a run with this coordinator
/// (another protocol revision, or a duroxide-pg build other than the one
/// this coordinator migrates with): waiting cannot cure it. When the agents
/// migrate their own schemas (`coordinator ab`), only the protocol counts.
pub(super) fn compatible(l: &AgentLink, agents_migrate: bool) -> Result<(), CoordinatorError> {
    let h = &l.hello;
    if h.protocol_version != PROTOCOL_VERSION {
        return Err(CoordinatorError::agent(
            &l.address,
            format!("speaks protocol revision {}, this coordinator speaks {}", h.protocol_version, PROTOCOL_VERSION),
        ));
    }
    if !agents_migrate && h.duroxide_pg_version != loadgen_common::DUROXIDE_PG_VERSION {
        return Err(CoordinatorError::agent(
            &l.address,
            format!(
                "runs duroxide-pg {}, this coordinator {}; every runtime on a schema must run the same build (to compare builds, use coordinator ab)",
                h.duroxide_pg_version,
                loadgen_common::DUROXIDE_PG_VERSION
            ),
        ));
    }
    Ok(())
}

/// Refuse agents whose duroxide-pg build cannot share the run's schemas:
/// one that differs from the others (every runtime on a schema must run the
/// same build), or, when this coordinator migrates the schema, from its own;
/// or one other than the release the run names (`--build`).
pub fn check_builds(links: &[AgentLink], agents_migrate: bool, expect: Option<&str>) -> Result<(), CoordinatorError> {
    for l in links {
        compatible(l, agents_migrate)?;
        if let Some(want) = expect
            && l.hello.duroxide_pg_version != want
        {
            return Err(CoordinatorError::agent(
                &l.address,
                format!("runs duroxide-pg {}, the run names --build {want}", l.hello.duroxide_pg_version),
            ));
        }
        if let Some(first) = links.first()
            && first.hello.duroxide_pg_version != l.hello.duroxide_pg_version
        {
            return Err(CoordinatorError::agent(
                &l.address,
                format!(
                    "runs duroxide-pg {}, agent {} runs {}; every runtime on a schema must run the same build",
                    l.hello.duroxide_pg_version, first.address, first.hello.duroxide_pg_version
                ),
            ));
        }
    }
    Ok(())
}

/// Refuse a schedule that shifts the clock of an agent that cannot shift it
/// (a remote agent started without `--clock-control`): bad input.
pub fn check_clock_control(links: &[AgentLink], skewed: &[u32]) -> Result<(), CoordinatorError> {
    for &i in skewed {
        match links.get(i as usize) {
            None => {
                return Err(CoordinatorError::Usage(format!(
                    "a clock-skew fault names agent {i}, and the run has {} agent(s)",
                    links.len()
                )));
            }
            Some(l) if !l.hello.clock_control => {
                return Err(CoordinatorError::Usage(format!(
                    "a clock-skew fault names agent {i} ({}), which cannot shift its clock: start it with --clock-control (needs libfaketime)",
                    l.address
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Refuse agents that cannot take part in one run.
pub fn check(links: &[AgentLink]) -> Result<(), CoordinatorError> {
    let mut processes = HashSet::new();
    for l in links {
        compatible(l, true)?;
        let h = &l.hello;
        if let Some(state) = h.busy {
            return Err(CoordinatorError::agent(
                &l.address,
                format!("is busy ({state}); another coordinator is using it"),
            ));
        }
        if !processes.insert((h.hostname.clone(), h.pid)) {
            return Err(CoordinatorError::Refused {
                agent: l.address.clone(),
                reason: format!("is the same process as another listed agent ({} pid {})", h.hostname, h.pid),
            });
        }
    }
    Ok(())
}
