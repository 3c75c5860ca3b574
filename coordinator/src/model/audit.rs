//! The correctness audit's result: what the schema itself says about a run,
//! instance by instance, and per scenario.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The correctness audit: what the schema itself says about a run, instance
/// by instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// Instances of the run found in the schema (with children).
    pub instances: u64,
    /// Instances the generator counted as launched (0 when unknown).
    pub launched: u64,
    /// Instances whose current execution is terminal.
    pub terminal_once: u64,
    pub completed: u64,
    pub failed: u64,
    /// Instances whose current execution is not terminal (must be 0).
    pub not_terminal: u64,
    /// Instances that differ from what their scenario expects (must be 0).
    pub anomalies: u64,
    /// Of those, instances whose output differs.
    pub wrong_output: u64,
    /// Instances (started by the generator, with their children) that ended
    /// exactly as their scenario expects.
    #[serde(default)]
    pub as_expected: u64,
    /// Instances that failed where their scenario expects completion: the
    /// success gate counts them; listed among the mismatches, they do not
    /// fail the audit (which is about what the database kept).
    #[serde(default)]
    pub unexpected_failures: u64,
    /// Messages left in the orchestrator and worker queues (must be 0),
    /// stale timers aside.
    pub queued: u64,
    /// Executions with no instance row (duroxide's client cannot see them).
    #[serde(default)]
    pub orphaned: u64,
    /// Timers of instances that ended before the timer fired, still queued
    /// (a cancelled instance's timer): discarded by duroxide when they fire.
    #[serde(default)]
    pub stale_timers: u64,
    /// ActivityCompleted events in the history, and how many the
    /// expectations name (where they name an exact count).
    pub activity_completions: u64,
    pub expected_activity_completions: u64,
    /// Activity executions counted where they ran (0 when unknown) and how
    /// many of them were redeliveries (executions beyond the history's
    /// completions and failures).
    pub activities_executed: u64,
    pub redeliveries: u64,
    /// Whether the history was read for messages processed more than once
    /// (not where only an agent reads the store).
    #[serde(default)]
    pub exactly_once_checked: bool,
    /// Messages processed again beyond their first time (must be 0).
    #[serde(default)]
    pub processed_twice: u64,
    /// The first of them, each named.
    #[serde(default)]
    pub duplicates: Vec<Duplicate>,
    /// Whether the queues' delivery counts were watched during the run.
    #[serde(default)]
    pub livelock_checked: bool,
    /// Messages delivered [`Redelivered::MANY`] times or more during the
    /// run (by their queue's attempt count), processed in the end or not.
    #[serde(default)]
    pub redelivered_messages: Vec<Redelivered>,
    /// Of those, the ones never processed (still queued after the run).
    #[serde(default)]
    pub livelocked: u64,
    /// Whether the run's schema noted leases handed out already expired (a
    /// trigger on each lease written; not where only an agent reads the store).
    #[serde(default)]
    pub expired_leases_checked: bool,
    /// Leases handed out already expired (must be 0).
    #[serde(default)]
    pub expired_leases: u64,
    /// Renewals of an instance lock that revived it after it expired or
    /// moved its deadline earlier (must be 0).
    #[serde(default)]
    pub bad_renewals: u64,
    /// The first of both.
    #[serde(default)]
    pub expired_lease_named: Vec<ExpiredLease>,
    /// Instances the generator saw end during the run whose final state was
    /// compared (0: not checked, as when the agents track completions).
    #[serde(default)]
    pub acknowledged_checked: u64,
    /// Of those, the ones not so at the end: not terminal, or gone (must be 0).
    #[serde(default)]
    pub lost_acknowledged: u64,
    /// Of those, terminal at the end with another output than was seen (must be 0).
    #[serde(default)]
    pub changed_output: u64,
    /// Of those, with a shorter history at the end than was seen (must be 0).
    #[serde(default)]
    pub shortened_history: u64,
    /// The first of them.
    #[serde(default)]
    pub lost_work: Vec<LostWork>,
    /// The activity ledger the agents kept, compared with the history
    /// (absent when it was not: a store only an agent reads, older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_ledger: Option<super::ledger::LedgerCheck>,
    /// The first instances that differ, each with what differs.
    #[serde(default)]
    pub mismatches: Vec<InstanceMismatch>,
    /// Per scenario.
    #[serde(default)]
    pub by_scenario: BTreeMap<String, ScenarioAudit>,
    /// What failed the audit, one line each (empty: passed).
    pub problems: Vec<String>,
    /// Remarks that do not fail it (extra instances, redeliveries).
    pub notes: Vec<String>,
    /// How long the audit's queries took.
    #[serde(default)]
    pub duration_ms: u64,
}

impl Audit {
    /// True when nothing failed the audit.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The audit of one scenario's instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioAudit {
    /// Instances started by the generator (children not counted).
    pub instances: u64,
    pub as_expected: u64,
    pub mismatched: u64,
    /// Children found below them, and how many were expected.
    pub children: u64,
    pub expected_children: u64,
}

/// One instance that differs from what its scenario expects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceMismatch {
    pub instance: String,
    pub scenario: String,
    pub problems: Vec<String>,
}

/// One message the history shows processed more than once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub instance: String,
    pub execution: u64,
    /// The history event's type.
    pub kind: String,
    /// The message, as people read it (an event's name and data, or the
    /// event a completion completes).
    pub message: String,
    /// How often the history holds it.
    pub times: u64,
    /// The history's event ids of each time.
    pub event_ids: Vec<u64>,
}

impl Duplicate {
    /// "r-0-7 execution 1: ExternalEvent "e" with data "..." 2 times (events 5, 9)".
    pub fn line(&self) -> String {
        let ids: Vec<String> = self.event_ids.iter().map(u64::to_string).collect();
        format!(
            "{} execution {}: {} {} times (events {})",
            self.instance,
            self.execution,
            self.message,
            self.times,
            ids.join(", ")
        )
    }
}

/// A message its queue handed out many times during the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Redelivered {
    /// "orchestrator" or "worker".
    pub queue: String,
    pub instance: String,
    pub message_id: u64,
    /// The most deliveries seen (the queue's attempt count).
    pub attempts: u64,
    /// When it was first and last seen at [`Redelivered::MANY`] or more,
    /// seconds after the common start.
    pub first_seen_s: f64,
    pub last_seen_s: f64,
    /// It left its queue by the end of the run.
    pub processed: bool,
}

impl Redelivered {
    /// Deliveries from which a message is named (duroxide's default poison
    /// threshold is higher: this names a message well before it is poisoned).
    pub const MANY: u64 = 5;

    /// "orchestrator message 812 of r-0-7: delivered 12 times (seen 4.0-9.1 s), never processed".
    pub fn line(&self) -> String {
        format!(
            "{} message {} of {}: delivered {} times (seen {:.1}-{:.1} s){}",
            self.queue,
            self.message_id,
            self.instance,
            self.attempts,
            self.first_seen_s,
            self.last_seen_s,
            if self.processed { ", then processed" } else { ", never processed" }
        )
    }
}

/// A lease handed out already expired, or renewed wrongly (on the
/// database's clock), as the run schema's trigger noted it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpiredLease {
    /// "orchestrator" (an instance lock) or "worker" (a work item's lock).
    pub queue: String,
    pub instance: String,
    pub token: String,
    /// "handed_out" (written already expired), "revived" (a renewal extended
    /// a lease already expired), "shortened" (a renewal moved its deadline earlier).
    pub kind: String,
    /// handed_out: how long before it was handed out it had expired;
    /// revived: how long it had been expired; shortened: by how much.
    pub by_ms: u64,
    /// When it was written, seconds after the common start.
    pub seen_s: f64,
}

impl ExpiredLease {
    /// "worker lease of r-0-7 (lock token 5f3a...): handed out already expired, by 29.1 s (at 12.0 s)".
    pub fn line(&self) -> String {
        let by = self.by_ms as f64 / 1000.0;
        let what = match self.kind.as_str() {
            "revived" => format!("renewed {by:.1} s after it had expired"),
            "shortened" => format!("renewed with a deadline {by:.1} s earlier"),
            _ => format!("handed out already expired, by {by:.1} s"),
        };
        format!(
            "{} lease of {} (lock token {}): {what} (at {:.1} s)",
            self.queue, self.instance, self.token, self.seen_s
        )
    }
}

/// An instance seen ending during the run that is not so at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWork {
    pub instance: String,
    /// "Completed" or "Failed", as the completion query read it (with its
    /// output's md5 or its history length where those differ).
    pub seen: String,
    /// Its status after the run of its latest execution ("Running", or "no execution").
    pub finally: String,
    /// What differs: "status", "output" or "history".
    #[serde(default)]
    pub differs: String,
}

impl LostWork {
    pub fn line(&self) -> String {
        format!("{}: seen {} during the run, now {}", self.instance, self.seen, self.finally)
    }
}
