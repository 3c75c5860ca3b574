//! The fault schedule as data: `[[fault]]` tables in a TOML file
//! (`--faults FILE`) or in a profile, each with a kind, a start time, a
//! duration where the fault lasts, and a target; checked against the run it
//! will break before anything starts.
//!
//! ```toml
//! [[fault]]
//! kind = "pause-db"          # freeze the throwaway Postgres
//! at = "20s"                 # after the common start
//! duration = "3s"
//!
//! [[fault]]
//! kind = "terminate-backends"
//! at = "40s"
//! share = 0.5                # half of the run's backends (default all)
//! ```

use std::time::Duration;

use loadgen_common::units::{duration_text, format_duration, opt_duration_text};
use serde::{Deserialize, Serialize};

/// What a fault breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `pg_terminate_backend` on the run's database backends (a share or all).
    TerminateBackends,
    /// Crash the throwaway Postgres (every backend dies at once), stay down
    /// for `duration`, start it again on the same data.
    RestartDb,
    /// SIGSTOP the throwaway Postgres and its backends for `duration`, then
    /// SIGCONT: a database that hangs without closing connections.
    PauseDb,
    /// SIGKILL a local agent: its orchestrations must be finished by the others.
    KillAgent,
    /// SIGSTOP a local agent for `duration`, then SIGCONT.
    FreezeAgent,
    /// Add `delay` each way to an agent's (or every agent's) database
    /// traffic for `duration`, through the agent's relay.
    DbLatency,
    /// Pass none of an agent's (or every agent's) database traffic for
    /// `duration`, through the agent's relay (connections stay open).
    DbPartition,
    /// Shut one runtime inside an agent down (a second's grace, then its
    /// in-flight work is abandoned), leave it down for `duration` (default
    /// none) and start a fresh one with a new worker id: applied by the agent.
    RestartRuntime,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::TerminateBackends => "terminate-backends",
            FaultKind::RestartDb => "restart-db",
            FaultKind::PauseDb => "pause-db",
            FaultKind::KillAgent => "kill-agent",
            FaultKind::FreezeAgent => "freeze-agent",
            FaultKind::DbLatency => "db-latency",
            FaultKind::DbPartition => "db-partition",
            FaultKind::RestartRuntime => "restart-runtime",
        }
    }

    /// Faults applied through the agents' relays.
    pub fn through_relay(self) -> bool {
        matches!(self, FaultKind::DbLatency | FaultKind::DbPartition)
    }

    /// Faults the agents apply themselves (sent over the protocol, so they
    /// reach remote agents too).
    pub fn by_agent(self) -> bool {
        self.through_relay() || self == FaultKind::RestartRuntime
    }

    /// Faults that last (and need a duration).
    fn lasts(self) -> bool {
        matches!(
            self,
            FaultKind::RestartDb
                | FaultKind::PauseDb
                | FaultKind::FreezeAgent
                | FaultKind::DbLatency
                | FaultKind::DbPartition
        )
    }

    /// Faults on the database server itself (only the throwaway one).
    fn on_server(self) -> bool {
        matches!(self, FaultKind::RestartDb | FaultKind::PauseDb)
    }

    /// Faults on agent processes (only local ones).
    fn on_agent(self) -> bool {
        matches!(self, FaultKind::KillAgent | FaultKind::FreezeAgent)
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// When it starts, after the common start instant.
    #[serde(with = "duration_text")]
    pub at: Duration,
    /// How long it lasts (restart-db: downtime; pause-db, freeze-agent).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// terminate-backends: the share of backends (0 < share <= 1; default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// kill-agent, freeze-agent: the agent's index (default 0); db-latency,
    /// db-partition: one agent's traffic (default every agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<u32>,
    /// restart-runtime: which of the agent's runtimes (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<u32>,
    /// db-latency: the delay added each way.
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
}

impl FaultSpec {
    /// How long it lasts (zero for instantaneous faults).
    pub fn length(&self) -> Duration {
        self.duration.unwrap_or_default()
    }

    /// What it targets, for people.
    pub fn target(&self) -> String {
        match self.kind {
            FaultKind::TerminateBackends => match self.share {
                Some(s) if s < 1.0 => format!("{:.0}% of the run's backends", s * 100.0),
                _ => "every backend of the run's database".into(),
            },
            FaultKind::RestartDb | FaultKind::PauseDb => "the throwaway Postgres".into(),
            FaultKind::KillAgent | FaultKind::FreezeAgent => format!("agent {}", self.agent.unwrap_or(0)),
            FaultKind::RestartRuntime => {
                format!("agent {} runtime {}", self.agent.unwrap_or(0), self.runtime.unwrap_or(0))
            }
            FaultKind::DbLatency | FaultKind::DbPartition => match self.agent {
                Some(i) => format!("agent {i}'s database traffic"),
                None => "every agent's database traffic".into(),
            },
        }
    }
}

/// A run's faults, ordered by start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
}

/// What a run offers the faults.
#[derive(Clone, Copy, Debug)]
pub struct Reach {
    /// The database is the throwaway one this coordinator starts.
    pub embedded_db: bool,
    /// Agents are local processes (and how many).
    pub local_agents: Option<u32>,
    /// The load's duration (faults must start within it).
    pub duration: Duration,
}

/// The longest a fault may last: a run holds its agents' leases and the
/// runtimes' locks meanwhile.
const LONGEST: Duration = Duration::from_secs(60);

impl Schedule {
    /// Parse a `--faults` file's text.
    pub fn parse(text: &str, file: &str) -> Result<Self, String> {
        let mut s: Schedule = toml::from_str(text).map_err(|e| format!("{file}: {}", e.message()))?;
        s.faults.sort_by_key(|f| f.at);
        Ok(s)
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// True when a fault acts through the agents' relays (they must run one).
    pub fn needs_relay(&self) -> bool {
        self.faults.iter().any(|f| f.kind.through_relay())
    }

    /// True when a fault kills or freezes agent `index` (its loss is planned).
    pub fn targets_agent(&self, index: u32) -> bool {
        self.faults.iter().any(|f| f.kind.on_agent() && f.agent.unwrap_or(0) == index)
    }

    /// Refuse what this run cannot do, with the reason (one line each).
    pub fn check(&self, reach: &Reach) -> Result<(), String> {
        if !reach.embedded_db {
            let refused: Vec<String> = self
                .faults
                .iter()
                .filter(|f| f.kind.on_server())
                .map(|f| format!("{} at {}", f.kind.as_str(), format_duration(f.at)))
                .collect();
            if !refused.is_empty() {
                return Err(format!(
                    "refused {}: this coordinator cannot stop or pause a database it did not start (against --database-url, terminate-backends, db-latency and db-partition apply)",
                    refused.join(", ")
                ));
            }
        }
        let mut down: Option<(Duration, Duration, FaultKind)> = None;
        for f in &self.faults {
            let name = format!("fault {} at {}", f.kind.as_str(), format_duration(f.at));
            if f.at >= reach.duration {
                return Err(format!(
                    "{name} starts after the load ends ({}): move it earlier or lengthen the run",
                    format_duration(reach.duration)
                ));
            }
            let optional = f.kind == FaultKind::RestartRuntime;
            match (f.kind.lasts() || optional, f.duration) {
                (true, None) if !optional => return Err(format!("{name} needs a duration")),
                (true, Some(d)) if d.is_zero() || d > LONGEST => {
                    return Err(format!("{name}: the duration must be between 1ms and {}", format_duration(LONGEST)));
                }
                (false, Some(_)) => return Err(format!("{name} is instantaneous: drop its duration")),
                _ => {}
            }
            if f.at + f.length() > reach.duration {
                return Err(format!("{name} lasts past the end of the load ({})", format_duration(reach.duration)));
            }
            if let Some(s) = f.share
                && !(s > 0.0 && s <= 1.0 && f.kind == FaultKind::TerminateBackends)
            {
                return Err(format!("{name}: share applies to terminate-backends only, as 0 < share <= 1"));
            }
            if f.agent.is_some() && !f.kind.on_agent() && !f.kind.by_agent() {
                return Err(format!("{name}: agent applies to agent, relay and runtime faults only"));
            }
            if f.runtime.is_some() && f.kind != FaultKind::RestartRuntime {
                return Err(format!("{name}: runtime applies to restart-runtime only"));
            }
            match (f.kind, f.delay) {
                (FaultKind::DbLatency, None) => return Err(format!("{name} needs a delay (added each way)")),
                (FaultKind::DbLatency, Some(d)) if d.is_zero() || d > Duration::from_secs(10) => {
                    return Err(format!("{name}: the delay must be between 1ms and 10s"));
                }
                (FaultKind::DbLatency, Some(_)) | (_, None) => {}
                (_, Some(_)) => return Err(format!("{name}: delay applies to db-latency only")),
            }
            if f.kind.by_agent()
                && let (Some(i), Some(n)) = (f.agent, reach.local_agents)
                && i >= n
            {
                return Err(format!("{name}: there is no agent {i} (agents 0 to {})", n.saturating_sub(1)));
            }
            if f.kind.on_agent() {
                let Some(n) = reach.local_agents else {
                    return Err(format!(
                        "{name}: agent faults need --local agents (this coordinator cannot signal remote ones)"
                    ));
                };
                let i = f.agent.unwrap_or(0);
                if i >= n {
                    return Err(format!("{name}: there is no agent {i} (agents 0 to {})", n.saturating_sub(1)));
                }
            }
            // Two faults on the server at once cannot both be applied.
            if f.kind.on_server() {
                if let Some((from, to, other)) = down
                    && f.at < to
                {
                    return Err(format!(
                        "{name} overlaps {} from {} to {}: the server cannot be stopped twice",
                        other.as_str(),
                        format_duration(from),
                        format_duration(to)
                    ));
                }
                down = Some((f.at, f.at + f.length(), f.kind));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach() -> Reach {
        Reach { embedded_db: true, local_agents: Some(3), duration: Duration::from_secs(60) }
    }

    #[test]
    fn a_schedule_parses_sorted_and_passes_its_checks() {
        let s = Schedule::parse(
            r#"
            [[fault]]
            kind = "pause-db"
            at = "20s"
            duration = "3s"
            [[fault]]
            kind = "terminate-backends"
            at = "5s"
            share = 0.5
            [[fault]]
            kind = "freeze-agent"
            at = "30s"
            duration = "2s"
            agent = 2
            "#,
            "f.toml",
        )
        .expect("parse");
        assert_eq!(
            s.faults.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [FaultKind::TerminateBackends, FaultKind::PauseDb, FaultKind::FreezeAgent]
        );
        assert_eq!(s.faults[0].target(), "50% of the run's backends");
        s.check(&reach()).expect("fits");
    }

    #[test]
    fn impossible_schedules_are_refused_with_the_reason() {
        let refused = |text: &str, reach: Reach| {
            let s = Schedule::parse(text, "f.toml");
            match s {
                Err(e) => e,
                Ok(s) => s.check(&reach).expect_err(text),
            }
        };
        let r = reach();
        assert!(refused("[[fault]]\nkind = \"melt-db\"\nat = \"1s\"", r).contains("unknown variant"));
        assert!(
            refused("[[fault]]\nkind = \"pause-db\"\nat = \"70s\"\nduration = \"1s\"", r)
                .contains("after the load ends")
        );
        assert!(refused("[[fault]]\nkind = \"pause-db\"\nat = \"58s\"\nduration = \"5s\"", r).contains("past the end"));
        assert!(refused("[[fault]]\nkind = \"pause-db\"\nat = \"5s\"", r).contains("needs a duration"));
        assert!(
            refused("[[fault]]\nkind = \"kill-agent\"\nat = \"5s\"\nduration = \"1s\"", r).contains("instantaneous")
        );
        assert!(refused("[[fault]]\nkind = \"kill-agent\"\nat = \"5s\"\nagent = 3", r).contains("no agent 3"));
        let overlap = "[[fault]]\nkind = \"pause-db\"\nat = \"5s\"\nduration = \"5s\"\n[[fault]]\nkind = \"restart-db\"\nat = \"8s\"\nduration = \"1s\"";
        assert!(refused(overlap, r).contains("overlaps pause-db"));
        let theirs = Reach { embedded_db: false, ..r };
        // Every fault it cannot apply, named on the one line.
        let both = "[[fault]]\nkind = \"restart-db\"\nat = \"5s\"\nduration = \"1s\"\n[[fault]]\nkind = \"terminate-backends\"\nat = \"7s\"\n[[fault]]\nkind = \"pause-db\"\nat = \"9s\"\nduration = \"1s\"";
        let why = refused(both, theirs);
        assert!(why.starts_with("refused restart-db at 5s, pause-db at 9s:") && why.contains("did not start"), "{why}");
        let remote = Reach { local_agents: None, ..r };
        assert!(refused("[[fault]]\nkind = \"kill-agent\"\nat = \"5s\"", remote).contains("--local"));
        assert!(refused("[[fault]]\nkind = \"terminate-backends\"\nat = \"5s\"\nshare = 2.0", r).contains("share"));
        let latency = "[[fault]]\nkind = \"db-latency\"\nat = \"5s\"\nduration = \"2s\"";
        assert!(refused(latency, r).contains("needs a delay"));
        assert!(refused(&format!("{latency}\ndelay = \"20s\""), r).contains("between 1ms and 10s"));
        assert!(refused(&format!("{latency}\ndelay = \"5ms\"\nagent = 7"), r).contains("no agent 7"));
        assert!(
            refused("[[fault]]\nkind = \"pause-db\"\nat = \"5s\"\nduration = \"2s\"\ndelay = \"5ms\"", r)
                .contains("db-latency only")
        );
        // Relay faults reach remote agents too, and make the agents run their relays.
        let ok = Schedule::parse(&format!("{latency}\ndelay = \"5ms\""), "f").expect("parse");
        ok.check(&Reach { local_agents: None, embedded_db: false, ..r }).expect("remote agents");
        assert!(ok.needs_relay());
        // A runtime restart: the downtime is optional, the runtime index its own.
        let restart = "[[fault]]\nkind = \"restart-runtime\"\nat = \"5s\"\nagent = 1\nruntime = 1";
        let s = Schedule::parse(restart, "f").expect("parse");
        s.check(&Reach { local_agents: None, embedded_db: false, ..r }).expect("remote agents too");
        assert_eq!(s.faults[0].target(), "agent 1 runtime 1");
        assert!(!s.needs_relay() && !s.targets_agent(1));
        Schedule::parse(&format!("{restart}\nduration = \"2s\""), "f").expect("parse").check(&r).expect("downtime");
        assert!(refused(&format!("{restart}\nduration = \"2m\""), r).contains("between 1ms and"));
        assert!(
            refused("[[fault]]\nkind = \"pause-db\"\nat = \"5s\"\nduration = \"2s\"\nruntime = 1", r)
                .contains("restart-runtime only")
        );
    }
}
