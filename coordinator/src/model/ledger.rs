//! The activity ledger held against the history, as a result reports it
//! (see `db::audit::ledger` for how it is read).

use serde::{Deserialize, Serialize};

/// The run's activity ledger compared with the history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCheck {
    /// Executions the activities recorded (every agent, with late ones).
    pub executions: u64,
    /// ActivityScheduled events in the history of the run's instances.
    pub scheduled: u64,
    /// Why the ledger may lack executions that happened (an agent lost, a
    /// release unanswered, a buffer full); empty when it holds them all.
    /// Completions without a run are judged only when it is whole.
    #[serde(default)]
    pub incomplete: Vec<String>,
    /// Executions beyond their activity's schedulings: run again after a
    /// lease was lost while they ran (at least once; noted, not failed).
    pub ran_again: u64,
    /// Successful completions in the history that no agent's activity ran
    /// (must be 0; judged only on a whole ledger).
    pub completed_unrun: u64,
    /// Successful executions of an activity the history holds no
    /// scheduling of (must be 0: the history lost work that ran).
    pub unrecorded: u64,
    /// The first of each, named.
    #[serde(default)]
    pub named: Vec<LedgerEntry>,
}

impl LedgerCheck {
    /// The ledger is whole: every execution the agents counted is in it.
    pub fn whole(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// "4210 executions of 4180 scheduled activities: 30 ran again, 0 completed without a run, 0 ran unrecorded".
    pub fn summary(&self) -> String {
        let unrun = if self.whole() {
            format!("{} completed without a run", self.completed_unrun)
        } else {
            format!("completions without a run not judged (the ledger lacks lines: {})", self.incomplete.join("; "))
        };
        format!(
            "{} executions of {} scheduled activities: {} ran again, {unrun}, {} ran unrecorded in the history",
            self.executions, self.scheduled, self.ran_again, self.unrecorded
        )
    }
}

/// One scheduled activity (by instance, execution, name and input) whose
/// runs and history disagree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// "ran_again", "completed_unrun" or "unrecorded".
    pub kind: String,
    pub instance: String,
    pub execution: u64,
    pub activity: String,
    pub input_md5: String,
    /// ActivityScheduled and successful ActivityCompleted events in the history.
    pub scheduled: u64,
    pub completed: u64,
    /// Executions the ledger holds, returned and failed.
    pub ran_ok: u64,
    pub ran_failed: u64,
    /// The agents they ran on.
    pub agents: Vec<u32>,
}

impl LedgerEntry {
    /// "r-0-7 execution 1: activity Work (input 1a2b3c4d) scheduled 1, completed 1, ran 2 times (agents 0, 1)".
    pub fn line(&self) -> String {
        let agents: Vec<String> = self.agents.iter().map(u32::to_string).collect();
        let failed = if self.ran_failed > 0 { format!(", {} of them failed", self.ran_failed) } else { String::new() };
        let on = match agents.len() {
            0 => "no agent".to_string(),
            1 => format!("agent {}", agents[0]),
            _ => format!("agents {}", agents.join(", ")),
        };
        format!(
            "{} execution {}: activity {} (input {}) scheduled {}, completed {} in the history, ran {} time(s){failed} ({on})",
            self.instance,
            self.execution,
            self.activity,
            self.input_md5.chars().take(8).collect::<String>(),
            self.scheduled,
            self.completed,
            self.ran_ok + self.ran_failed,
        )
    }
}
