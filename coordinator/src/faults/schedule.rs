//! The fault schedule as data: `[[fault]]` tables in a TOML file
//! (`--faults FILE`) or in a profile, each with a kind, a start time, a
//! duration where the fault lasts, and the kind's own fields; read by the
//! kind's registry entry and checked against the run it will break before
//! anything starts.
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

use std::sync::Arc;
use std::time::Duration;

use loadgen_common::units::{duration_text, format_duration, opt_duration_text};
use serde::{Deserialize, Serialize};

use super::{Fault, Lasting};

/// One scheduled fault as written: what every kind has, and the kind's own
/// fields as they came (its registry entry reads them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub kind: String,
    /// When it starts, after the common start instant.
    #[serde(with = "duration_text")]
    pub at: Duration,
    /// How long it lasts (restart-db: downtime; pause-db, freeze-agent, ...).
    #[serde(default, with = "opt_duration_text", skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// The kind's own fields (share, agent, delay, ...).
    #[serde(flatten)]
    pub fields: toml::Table,
}

impl FaultSpec {
    /// How long it lasts (zero for instantaneous faults).
    pub fn length(&self) -> Duration {
        self.duration.unwrap_or_default()
    }

    /// "fault pause-db at 5s": how messages name it.
    fn name(&self) -> String {
        format!("fault {} at {}", self.kind, format_duration(self.at))
    }
}

/// A fault checked for this run: as written, and read by its kind.
#[derive(Clone, Debug)]
pub struct Planned {
    pub spec: FaultSpec,
    /// Its kind's registry entry.
    pub def: &'static super::FaultDef,
    pub fault: Arc<dyn Fault>,
}

impl Planned {
    pub fn kind(&self) -> &'static str {
        self.fault.kind()
    }

    pub fn at(&self) -> Duration {
        self.spec.at
    }

    pub fn length(&self) -> Duration {
        self.spec.length()
    }

    pub fn target(&self) -> String {
        self.fault.target()
    }
}

/// A run's faults, checked and ordered by start.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    pub faults: Vec<Planned>,
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
    /// The database is the HA cluster this coordinator starts (`--ha`).
    pub ha: bool,
}

/// The longest a fault may last: a run holds its agents' leases and the
/// runtimes' locks meanwhile.
pub const LONGEST: Duration = Duration::from_secs(60);

/// The `[[fault]]` tables of a `--faults` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    fault: Vec<FaultSpec>,
}

/// Read a `--faults` file's text (`file` names it in errors); the kinds are
/// read and checked by [`Schedule::resolve`].
pub fn parse(text: &str, file: &str) -> Result<Vec<FaultSpec>, String> {
    let f: File = toml::from_str(text).map_err(|e| format!("{file}: {}", e.message().trim_end()))?;
    Ok(f.fault)
}

impl Schedule {
    /// Read every spec by its kind and check the whole against what this
    /// run can reach; refuse what it cannot do, with the reason (one line).
    pub fn resolve(specs: &[FaultSpec], reach: &Reach) -> Result<Self, String> {
        let mut faults = Vec::with_capacity(specs.len());
        for spec in specs {
            let def = super::find(&spec.kind).ok_or_else(|| {
                let kinds: Vec<&str> = super::KINDS.iter().map(|k| k.name).collect();
                format!("{}: unknown fault kind `{}` (kinds: {})", spec.name(), spec.kind, kinds.join(", "))
            })?;
            let fault = (def.parse)(spec.fields.clone()).map_err(|e| format!("{}: {e}", spec.name()))?;
            faults.push(Planned { spec: spec.clone(), def, fault: Arc::from(fault) });
        }
        faults.sort_by_key(|p| p.spec.at);
        let schedule = Schedule { faults };
        schedule.check(reach)?;
        Ok(schedule)
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// True when a fault acts through the agents' relays (they must run one).
    pub fn needs_relay(&self) -> bool {
        self.faults.iter().any(|f| f.fault.needs_relay())
    }

    /// The agent builds faults need on this machine (made before the run).
    pub fn agent_builds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.faults.iter().filter_map(|f| f.fault.agent_build().map(str::to_string)).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The agents whose wall clocks faults shift (they run with `--clock-control`).
    pub fn clock_agents(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.faults.iter().filter_map(|f| f.fault.clock_agent()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// True when a fault kills or freezes agent `index` (its loss is planned).
    pub fn targets_agent(&self, index: u32) -> bool {
        self.faults.iter().any(|f| f.fault.agent_loss().is_some_and(|l| l.agent == index))
    }

    fn check(&self, reach: &Reach) -> Result<(), String> {
        if !reach.embedded_db {
            let refused: Vec<String> = self
                .faults
                .iter()
                .filter(|f| f.fault.holds_server())
                .map(|f| format!("{} at {}", f.kind(), format_duration(f.at())))
                .collect();
            if !refused.is_empty() {
                return Err(format!(
                    "refused {}: this coordinator cannot stop or pause a database it did not start (against --database-url, {} apply)",
                    refused.join(", "),
                    applicable_to_any_database()
                ));
            }
        }
        let mut down: Option<(Duration, Duration, &str)> = None;
        for f in &self.faults {
            let name = f.spec.name();
            if f.at() >= reach.duration {
                return Err(format!(
                    "{name} starts after the load ends ({}): move it earlier or lengthen the run",
                    format_duration(reach.duration)
                ));
            }
            check_duration(&name, f, reach)?;
            f.fault.check(&name, reach)?;
            // Two faults on the server at once cannot both be applied.
            if f.fault.holds_server() {
                if let Some((from, to, other)) = down
                    && f.at() < to
                {
                    return Err(format!(
                        "{name} overlaps {other} from {} to {}: the server cannot be stopped twice",
                        format_duration(from),
                        format_duration(to)
                    ));
                }
                down = Some((f.at(), f.at() + f.length(), f.kind()));
            }
        }
        Ok(())
    }
}

/// The duration the kind allows, within the longest a fault may last and
/// the end of the load.
fn check_duration(name: &str, f: &Planned, reach: &Reach) -> Result<(), String> {
    match (f.def.lasting, f.spec.duration) {
        (Lasting::Required, None) => return Err(format!("{name} needs a duration")),
        (Lasting::Instant, Some(_)) => return Err(format!("{name} is instantaneous: drop its duration")),
        (_, Some(d)) if d.is_zero() || d > LONGEST => {
            return Err(format!("{name}: the duration must be between 1ms and {}", format_duration(LONGEST)));
        }
        _ => {}
    }
    if f.at() + f.length() > reach.duration {
        return Err(format!("{name} lasts past the end of the load ({})", format_duration(reach.duration)));
    }
    Ok(())
}

/// The kinds that do not need the throwaway server, for the refusal.
fn applicable_to_any_database() -> String {
    let names: Vec<&str> = super::KINDS
        .iter()
        .filter(|k| {
            // A kind holds the server whatever its fields: ask a default one.
            (k.parse)(toml::Table::new()).is_ok_and(|f| !f.holds_server())
        })
        .map(|k| k.name)
        .collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach() -> Reach {
        Reach { embedded_db: true, local_agents: Some(3), duration: Duration::from_secs(60), ha: false }
    }

    fn resolve(text: &str, reach: &Reach) -> Result<Schedule, String> {
        Schedule::resolve(&parse(text, "f.toml")?, reach)
    }

    #[test]
    fn a_schedule_parses_sorted_and_passes_its_checks() {
        let s = resolve(
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
            &reach(),
        )
        .expect("fits");
        assert_eq!(
            s.faults.iter().map(Planned::kind).collect::<Vec<_>>(),
            ["terminate-backends", "pause-db", "freeze-agent"]
        );
        assert_eq!(s.faults[0].target(), "50% of the run's backends");
        assert!(s.targets_agent(2) && !s.targets_agent(1) && !s.needs_relay());
    }

    #[test]
    fn specs_round_trip_through_toml_and_json_as_written() {
        let text = "[[fault]]\nkind = \"db-latency\"\nat = \"5s\"\nduration = \"2s\"\ndelay = \"5ms\"\nagent = 1\n";
        let specs = parse(text, "f").expect("parse");
        let json = serde_json::to_value(&specs[0]).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"kind": "db-latency", "at": "5s", "duration": "2s", "delay": "5ms", "agent": 1})
        );
        let back: FaultSpec = serde_json::from_value(json).expect("back");
        assert_eq!(back, specs[0]);
    }

    #[test]
    fn impossible_schedules_are_refused_with_the_reason() {
        let refused = |text: &str, reach: Reach| resolve(text, &reach).expect_err(text);
        let r = reach();
        let unknown = refused("[[fault]]\nkind = \"melt-db\"\nat = \"1s\"", r);
        assert!(unknown.contains("unknown fault kind `melt-db` (kinds: terminate-backends,"), "{unknown}");
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
        // Every fault it cannot apply, named on the one line, with those it can.
        let both = "[[fault]]\nkind = \"restart-db\"\nat = \"5s\"\nduration = \"1s\"\n[[fault]]\nkind = \"terminate-backends\"\nat = \"7s\"\n[[fault]]\nkind = \"pause-db\"\nat = \"9s\"\nduration = \"1s\"";
        let why = refused(both, theirs);
        assert!(why.starts_with("refused restart-db at 5s, pause-db at 9s:") && why.contains("did not start"), "{why}");
        assert!(why.contains("terminate-backends, kill-agent") && !why.contains("pause-db apply"), "{why}");
        let remote = Reach { local_agents: None, ..r };
        assert!(refused("[[fault]]\nkind = \"kill-agent\"\nat = \"5s\"", remote).contains("--local"));
        assert!(refused("[[fault]]\nkind = \"terminate-backends\"\nat = \"5s\"\nshare = 2.0", r).contains("share"));
        let latency = "[[fault]]\nkind = \"db-latency\"\nat = \"5s\"\nduration = \"2s\"";
        assert!(refused(latency, r).contains("needs a delay"));
        assert!(refused(&format!("{latency}\ndelay = \"20s\""), r).contains("between 1ms and 10s"));
        assert!(refused(&format!("{latency}\ndelay = \"5ms\"\nagent = 7"), r).contains("no agent 7"));
        // A field the kind does not take is named.
        let stray = refused("[[fault]]\nkind = \"pause-db\"\nat = \"5s\"\nduration = \"2s\"\ndelay = \"5ms\"", r);
        assert!(stray.starts_with("fault pause-db at 5s: unknown field `delay`"), "{stray}");
        assert!(
            refused("[[fault]]\nkind = \"pause-db\"\nat = \"5s\"\nduration = \"2s\"\nruntime = 1", r)
                .contains("unknown field `runtime`")
        );
        assert!(
            refused("[[fault]]\nkind = \"terminate-backends\"\nat = \"5s\"\nagent = 1", r)
                .contains("unknown field `agent`")
        );
        // Relay faults reach remote agents too, and make the agents run their relays.
        let ok =
            resolve(&format!("{latency}\ndelay = \"5ms\""), &Reach { local_agents: None, embedded_db: false, ..r })
                .expect("remote agents");
        assert!(ok.needs_relay());
        // A runtime restart: the downtime is optional, the runtime index its own.
        let restart = "[[fault]]\nkind = \"restart-runtime\"\nat = \"5s\"\nagent = 1\nruntime = 1";
        let s = resolve(restart, &Reach { local_agents: None, embedded_db: false, ..r }).expect("remote agents too");
        assert_eq!(s.faults[0].target(), "agent 1 runtime 1");
        assert!(!s.needs_relay() && !s.targets_agent(1));
        resolve(&format!("{restart}\nduration = \"2s\""), &r).expect("downtime");
        assert!(refused(&format!("{restart}\nduration = \"2m\""), r).contains("between 1ms and"));
    }

    #[test]
    fn every_kind_is_registered_once_and_documented() {
        let mut names: Vec<&str> = crate::faults::KINDS.iter().map(|k| k.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a kind registered twice");
        for k in crate::faults::KINDS {
            assert!(!k.about.is_empty(), "{}", k.name);
            assert!(crate::faults::help_text().contains(k.name));
            // Each field the help names is one the kind reads.
            for (field, _) in k.fields {
                let mut t = toml::Table::new();
                t.insert((*field).to_string(), toml::Value::String("x".into()));
                if let Err(e) = (k.parse)(t) {
                    assert!(!e.contains("unknown field"), "{}: {field} is not read: {e}", k.name);
                }
            }
        }
    }
}
