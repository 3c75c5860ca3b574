//! The activity ledger: every activity execution, written by the activity
//! itself where it runs and carried to the coordinator with the agent's
//! interval reports, so the evidence that work ran is kept outside the
//! database under test (a failover or a restore cannot erase it). After the
//! run the coordinator compares it with the history: an activity scheduled
//! once that ran twice, a completion in the history that no agent ran, a run
//! the history has no record of.

use std::collections::{BTreeMap, BTreeSet};

/// One activity execution, as the activity saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivityRun {
    pub instance: String,
    pub execution: u64,
    /// The activity's registered name.
    pub activity: String,
    /// md5 of its input, lowercase hex (what Postgres's `md5()` returns).
    pub input_md5: String,
    /// It returned a result (not an error).
    pub ok: bool,
}

/// What identifies a scheduled activity without its event id (which
/// duroxide does not show an activity): instance, execution, name, input.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActivityKey {
    pub instance: String,
    pub execution: u64,
    pub activity: String,
    pub input_md5: String,
}

/// How often one scheduled activity ran, and on which agents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runs {
    pub ok: u64,
    pub failed: u64,
    pub agents: BTreeSet<u32>,
}

impl Runs {
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }
}

/// The run's ledger, merged over its agents.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub runs: BTreeMap<ActivityKey, Runs>,
    /// Executions recorded (the sum of every key's runs).
    pub executions: u64,
    /// Why the ledger may lack executions that happened (an agent lost, a
    /// buffer that overflowed); empty when it holds every one.
    pub incomplete: Vec<String>,
}

impl Ledger {
    /// Add what agent `agent` reported.
    pub fn add(&mut self, agent: u32, runs: impl IntoIterator<Item = ActivityRun>) {
        for r in runs {
            let key = ActivityKey {
                instance: r.instance,
                execution: r.execution,
                activity: r.activity,
                input_md5: r.input_md5,
            };
            let e = self.runs.entry(key).or_default();
            if r.ok {
                e.ok += 1;
            } else {
                e.failed += 1;
            }
            e.agents.insert(agent);
            self.executions += 1;
        }
    }

    /// Add what agent `agent` reported, and say so when it could not keep
    /// `dropped` lines.
    pub fn add_reported(&mut self, agent: u32, runs: impl IntoIterator<Item = ActivityRun>, dropped: u64) {
        self.add(agent, runs);
        if dropped > 0 {
            self.incomplete(format!("agent {agent} could not keep every line (its buffer was full)"));
        }
    }

    /// Note that the ledger lacks executions, and why.
    pub fn incomplete(&mut self, why: impl Into<String>) {
        let why = why.into();
        if !self.incomplete.contains(&why) {
            self.incomplete.push(why);
        }
    }
}

/// The line a successor process prints for one execution (tab-separated:
/// instance ids may hold spaces, never tabs).
pub fn to_line(r: &ActivityRun) -> String {
    format!(
        "ran\t{}\t{}\t{}\t{}\t{}",
        r.instance,
        r.execution,
        r.activity,
        r.input_md5,
        if r.ok { "ok" } else { "failed" }
    )
}

/// Read back a line of [`to_line`]; `None` for any other line.
pub fn from_line(line: &str) -> Option<ActivityRun> {
    let mut f = line.strip_prefix("ran\t")?.split('\t');
    let run = ActivityRun {
        instance: f.next()?.to_string(),
        execution: f.next()?.parse().ok()?,
        activity: f.next()?.to_string(),
        input_md5: f.next()?.to_string(),
        ok: match f.next()? {
            "ok" => true,
            "failed" => false,
            _ => return None,
        },
    };
    f.next().is_none().then_some(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(instance: &str, ok: bool) -> ActivityRun {
        ActivityRun {
            instance: instance.into(),
            execution: 1,
            activity: "Work".into(),
            input_md5: "c4ca4238a0b923820dcc509a6f75849b".into(),
            ok,
        }
    }

    #[test]
    fn runs_of_one_scheduled_activity_add_up_across_agents() {
        let mut l = Ledger::default();
        l.add(0, [run("r-0-1", true), run("r-0-2", true)]);
        l.add(1, [run("r-0-1", false)]);
        assert_eq!(l.executions, 3);
        let key = ActivityKey {
            instance: "r-0-1".into(),
            execution: 1,
            activity: "Work".into(),
            input_md5: "c4ca4238a0b923820dcc509a6f75849b".into(),
        };
        let r = &l.runs[&key];
        assert_eq!((r.ok, r.failed, r.total()), (1, 1, 2));
        assert_eq!(r.agents.iter().copied().collect::<Vec<_>>(), [0, 1]);
        l.incomplete("agent 1 lost");
        l.incomplete("agent 1 lost");
        assert_eq!(l.incomplete.len(), 1);
    }

    #[test]
    fn a_line_reads_back_as_written_and_nothing_else_does() {
        let r = run("r-0-1 with space", false);
        assert_eq!(from_line(&to_line(&r)), Some(r));
        assert_eq!(from_line("activities mixed=3"), None);
        assert_eq!(from_line("ran\tr\tx\tWork\tmd5\tok"), None);
        assert_eq!(from_line("ran\tr\t1\tWork\tmd5\tok\textra"), None);
        assert_eq!(from_line("ran\tr\t1\tWork\tmd5\tmaybe"), None);
    }
}
