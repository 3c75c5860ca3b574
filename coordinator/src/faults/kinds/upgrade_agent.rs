//! `upgrade-agent`: a rolling upgrade of one local agent while the load goes
//! on. The agent starts a successor process from the agent built against
//! duroxide-pg release `build` (made before the run, like `--build`), which
//! applies that build's migrations to the run's schema under the runtimes
//! still running the old build (this agent's until the successor runs, and
//! every other agent's), starts the same runtimes, and takes the agent's
//! work over; the agent then stops its own runtimes and keeps starting and
//! following orchestrations with its old build's client. The audit judges
//! the whole run. Applied once per agent: upgrade each agent in turn for a
//! whole rolling upgrade.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::faults::{
    AgentAction, Apply, Failure, Fault, FaultDef, Lasting, Reach, check_local_agent, fmt_duration, read_fields,
};

pub const DEF: FaultDef = FaultDef {
    name: "upgrade-agent",
    about: "hand a local agent's runtimes to a successor built against duroxide-pg `build`, which migrates the schema under load (a rolling upgrade)",
    fields: &[
        ("agent", "the agent's index (default 0)"),
        ("build", "the duroxide-pg release the successor runs, e.g. 0.1.38 (built before the run)"),
        ("binary", "or an agent binary to run as the successor (instead of build)"),
    ],
    lasting: Lasting::Instant,
    parse: |fields| Ok(Box::new(read_fields::<UpgradeAgent>(fields)?)),
};

/// Bound on the successor's migrations and start, and the agent's answer.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(150);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpgradeAgent {
    #[serde(default)]
    agent: u32,
    build: Option<String>,
    binary: Option<std::path::PathBuf>,
}

#[async_trait]
impl Fault for UpgradeAgent {
    fn kind(&self) -> &'static str {
        DEF.name
    }

    fn target(&self) -> String {
        match (&self.build, &self.binary) {
            (Some(b), _) => format!("agent {} to duroxide-pg {b}", self.agent),
            (None, Some(p)) => format!("agent {} to {}", self.agent, p.display()),
            (None, None) => format!("agent {}", self.agent),
        }
    }

    fn check(&self, name: &str, reach: &Reach) -> Result<(), String> {
        match (self.build.as_deref(), &self.binary) {
            (None, None) => return Err(format!("{name} needs the build it upgrades to (build = \"0.1.38\")")),
            (Some(_), Some(_)) => return Err(format!("{name}: give build or binary, not both")),
            (Some(b), None) if !crate::builds::is_release(b) => {
                return Err(format!("{name}: build {b:?} is not a duroxide-pg release such as 0.1.38"));
            }
            (None, Some(p)) if !p.is_file() => {
                return Err(format!("{name}: binary {} does not exist", p.display()));
            }
            _ => {}
        }
        check_local_agent(name, self.agent, reach)
    }

    fn agent_build(&self) -> Option<&str> {
        self.build.as_deref()
    }

    async fn apply(&self, cx: Apply<'_>) -> Result<String, Failure> {
        let agent = self.agent;
        let binary = match (&self.build, &self.binary) {
            (Some(build), _) => cx
                .targets
                .agent_binary(build)
                .ok_or_else(|| format!("the agent of duroxide-pg {build} was not built"))?,
            (None, Some(p)) => p.clone(),
            (None, None) => return Err("no build to upgrade to".into()),
        };
        if !cx.targets.tell_agent(agent, AgentAction::UpgradeRuntimes { binary, id: cx.id }) {
            return Err(format!("agent {agent} did not take the fault (no such agent, or its stream is closed)").into());
        }
        match tokio::time::timeout(UPGRADE_TIMEOUT, cx.targets.agent_report(agent, cx.id)).await {
            Ok(Some(Ok(detail))) => Ok(format!("agent {agent}: {detail}")),
            Ok(Some(Err(error))) => Err(format!("agent {agent}: {error}").into()),
            Ok(None) => Err(format!("agent {agent} ended before it reported the upgrade").into()),
            Err(_) => {
                Err(format!("agent {agent} did not report the upgrade within {}", fmt_duration(UPGRADE_TIMEOUT)).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::faults::{Reach, Schedule, schedule};
    use std::time::Duration;

    #[test]
    fn it_names_a_release_for_a_local_agent() {
        let local = Reach { embedded_db: true, local_agents: Some(2), duration: Duration::from_secs(30), ha: false };
        let read = |extra: &str, reach: &Reach| {
            let text = format!("[[fault]]\nkind = \"upgrade-agent\"\nat = \"5s\"\n{extra}");
            Schedule::resolve(&schedule::parse(&text, "f")?, reach)
        };
        let ok = read("agent = 1\nbuild = \"0.1.38\"", &local).expect("an upgrade");
        assert_eq!(ok.agent_builds(), ["0.1.38"]);
        assert_eq!(ok.faults[0].target(), "agent 1 to duroxide-pg 0.1.38");
        let remote = Reach { local_agents: None, ..local };
        for (extra, reach, said) in [
            ("agent = 1", &local, "needs the build"),
            ("build = \"../duroxide-pg\"", &local, "is not a duroxide-pg release"),
            ("agent = 2\nbuild = \"0.1.38\"", &local, "there is no agent 2"),
            ("build = \"0.1.38\"", &remote, "need --local agents"),
            ("build = \"0.1.38\"\nduration = \"2s\"", &local, "duration"),
            ("binary = \"/nonexistent/agent\"", &local, "does not exist"),
            ("build = \"0.1.38\"\nbinary = \"/bin/sh\"", &local, "not both"),
        ] {
            let e = read(extra, reach).expect_err(extra);
            assert!(e.contains(said), "{extra}: {e}");
        }
    }
}
