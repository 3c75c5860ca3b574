//! The correctness audit, instance by instance: after every run (and on
//! demand for a kept schema with `coordinator audit --schema S`) each
//! instance the generator started is held to what its scenario expects of
//! it (status, output, executions, history events by type, children), read
//! in a few set-based queries; nothing may be left running or queued;
//! activity executions beyond the history's completions are counted as
//! redeliveries. A mismatch names the instance and what differs.
//! [`query`] reads; [`inspected`] judges what an agent read of a store the
//! coordinator cannot reach; [`record`] is what a run keeps in its schema;
//! [`twice`], [`ledger`], [`livelock`], [`acknowledged`], [`errors`] are
//! the invariants from the history, the agents' ledger and the sampler.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::db::RunDb;
use loadgen_scenarios::{At, Count, Expect, Facts, Outcome, Scenario};

use crate::error::CoordinatorError;
use crate::model::{Audit, InstanceMismatch};

pub mod acknowledged;
pub mod errors;
pub mod inspected;
pub mod ledger;
pub mod livelock;
pub mod query;
pub mod record;
pub mod twice;

use query::{InstanceRow, MetricValues};

/// Mismatches kept by name in the result (the count is always whole).
const MISMATCHES_KEPT: usize = 50;

/// What the audit holds the schema to.
#[derive(Clone, Debug, Default)]
pub struct AuditInput {
    /// Only instances of this run (`<run>-...`); every instance when `None`.
    pub run_id: Option<String>,
    /// The run's workload; `None` audits only what needs no expectation.
    pub scenario: Option<Arc<dyn Scenario>>,
    /// Scenario facts every agent reported.
    pub facts: Facts,
    /// Instances the generator launched (0: unknown).
    pub launched: u64,
    /// Orchestrations the generator saw complete (None: unknown).
    pub completed: Option<u64>,
    /// Activity executions counted where they ran (0: unknown).
    pub activities_executed: u64,
}

/// The audit and the latencies read from the history, per scenario.
#[derive(Debug, Default)]
pub struct AuditOutcome {
    pub audit: Audit,
    pub latencies: BTreeMap<String, Vec<(String, MetricValues)>>,
}

/// Audit the run's schema against `input`.
pub async fn audit(provider: &RunDb, input: &AuditInput) -> Result<AuditOutcome, CoordinatorError> {
    let began = Instant::now();
    let pattern = input.run_id.as_ref().map_or("%".to_string(), |r| format!("{r}-%"));
    let rows = query::instances(provider, &pattern).await?;
    let queued = query::queued(provider, &pattern).await?;
    let orphans = query::orphans(provider, &pattern).await?;
    let (duplicates, extra) = twice::duplicates(provider, &pattern).await?;
    let mut audit = judge(&rows, input);
    name_orphans(&mut audit, &orphans);
    twice::record(&mut audit, duplicates, extra);
    audit.queued = queued.messages;
    audit.stale_timers = queued.stale_timers;
    if queued.messages > 0 {
        audit.problems.push(format!("{} message(s) left in the queues", queued.messages));
    }
    if queued.stale_timers > 0 {
        audit.notes.push(format!(
            "{} timer(s) of instances that ended before they fired still queued (duroxide discards them when they fire)",
            queued.stale_timers
        ));
    }
    let mut latencies = BTreeMap::new();
    if let Some(s) = &input.scenario {
        for (info, orchestrations) in owners(s.as_ref()) {
            for m in info.history_metrics {
                let values = query::history_metric(provider, &pattern, &orchestrations, m).await?;
                latencies.entry(info.name.to_string()).or_insert_with(Vec::new).push((m.name.to_string(), values));
            }
        }
    }
    audit.duration_ms = began.elapsed().as_millis() as u64;
    Ok(AuditOutcome { audit, latencies })
}

/// The scenarios of a workload with their orchestrations.
pub(super) fn owners(s: &dyn Scenario) -> Vec<(&'static loadgen_scenarios::Info, Vec<&'static str>)> {
    let mut by_name: BTreeMap<&str, (&'static loadgen_scenarios::Info, Vec<&'static str>)> = BTreeMap::new();
    for (o, info) in crate::plan::workload::orchestration_owners(s) {
        by_name.entry(info.name).or_insert_with(|| (info, Vec::new())).1.push(o);
    }
    by_name.into_values().collect()
}

/// Executions without an instance row are defects of their own: name each
/// (they also count among the launched instances missing from the schema).
fn name_orphans(a: &mut Audit, orphans: &[query::Orphan]) {
    a.orphaned = orphans.len() as u64;
    if orphans.is_empty() {
        return;
    }
    let named: Vec<String> = orphans
        .iter()
        .take(5)
        .map(|o| {
            if o.output.is_empty() {
                format!("{} {}", o.id, o.status)
            } else {
                format!("{} {} ({})", o.id, o.status, o.output)
            }
        })
        .collect();
    a.problems.push(format!(
        "{} execution(s) without an instance row, invisible to duroxide's client: {}{}",
        orphans.len(),
        named.join("; "),
        if orphans.len() > 5 { "; ..." } else { "" }
    ));
}

/// The agent and sequence number of a root id `<run>-<agent>-<seq>`.
fn parse_root(id: &str, run_id: Option<&str>) -> Option<At> {
    let rest = match run_id {
        Some(r) => id.strip_prefix(r)?.strip_prefix('-')?,
        None => id.split_once('-')?.1,
    };
    let (agent, seq) = rest.split_once('-')?;
    Some(At { agent: agent.parse().ok()?, seq: seq.parse().ok()? })
}

/// The parent of a child id (`<parent>::sub::<n>`).
fn parent_of(id: &str) -> Option<&str> {
    id.rfind("::sub::").map(|i| &id[..i])
}

/// Hold every instance to its expectation; the pure half of the audit.
pub fn judge(rows: &[InstanceRow], input: &AuditInput) -> Audit {
    let (mut a, children) = count(rows, input);
    let mut checker = Checker {
        children: &children,
        mismatches: Vec::new(),
        expected_completions: 0,
        mismatched: 0,
        unexpected_failures: 0,
    };
    let unexpected = match &input.scenario {
        Some(s) => hold_to_scenario(&mut a, &mut checker, rows, input, s.as_ref()),
        None => {
            a.notes.push("no run record in the schema: instances are not held to a scenario".into());
            if a.not_terminal > 0 {
                a.problems.push(format!("{} instance(s) not terminal", a.not_terminal));
            }
            Vec::new()
        }
    };
    if !unexpected.is_empty() {
        a.problems.push(format!(
            "{} instance(s) that no scenario started, e.g. {}",
            unexpected.len(),
            unexpected.iter().take(3).copied().collect::<Vec<_>>().join(", ")
        ));
    }
    add_mismatches(&mut a, checker);
    check_activities(&mut a, rows);
    a
}

/// Statuses and completions counted, and each instance's children by parent.
fn count<'a>(rows: &'a [InstanceRow], input: &AuditInput) -> (Audit, HashMap<&'a str, Vec<&'a InstanceRow>>) {
    let mut a = Audit {
        instances: rows.len() as u64,
        launched: input.launched,
        activities_executed: input.activities_executed,
        ..Default::default()
    };
    let mut children: HashMap<&str, Vec<&InstanceRow>> = HashMap::new();
    for r in rows {
        let o = &r.observed;
        match o.status.as_str() {
            "Completed" => a.completed += 1,
            "Failed" => a.failed += 1,
            _ => a.not_terminal += 1,
        }
        a.activity_completions += o.events.get("ActivityCompleted").copied().unwrap_or(0);
        if let Some(p) = parent_of(&r.id) {
            children.entry(p).or_default().push(r);
        }
    }
    a.terminal_once = a.completed + a.failed;
    (a, children)
}

/// Every root instance held to what its scenario expects (with its
/// children); the launched and completed counts held to the roots found.
/// Returns the roots no scenario started.
fn hold_to_scenario<'r>(
    a: &mut Audit,
    checker: &mut Checker<'_>,
    rows: &'r [InstanceRow],
    input: &AuditInput,
    s: &dyn Scenario,
) -> Vec<&'r str> {
    let by_id: HashMap<&str, &InstanceRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let extras: HashMap<String, Expect> = s.extra_instances(&input.facts).into_iter().collect();
    let (mut roots, mut roots_completed) = (0u64, 0u64);
    let mut unexpected = Vec::new();
    for r in rows.iter().filter(|r| parent_of(&r.id).is_none()) {
        let expect = match (extras.get(&r.id), parse_root(&r.id, input.run_id.as_deref())) {
            (Some(e), _) => e.clone(),
            (None, Some(at)) => s.expect(at, &input.facts),
            (None, None) => {
                unexpected.push(r.id.as_str());
                continue;
            }
        };
        roots += 1;
        roots_completed += u64::from(r.observed.status == "Completed");
        let before = checker.mismatched + checker.unexpected_failures;
        let (found, wanted) = checker.check(r, &expect);
        let sa = a.by_scenario.entry(expect.scenario.to_string()).or_default();
        sa.instances += 1;
        sa.children += found;
        sa.expected_children += wanted;
        if checker.mismatched + checker.unexpected_failures == before {
            sa.as_expected += 1;
            a.as_expected += 1;
        } else {
            sa.mismatched += 1;
        }
    }
    for id in extras.keys().filter(|id| !by_id.contains_key(id.as_str())) {
        a.problems.push(format!("instance {id} is missing from the schema"));
    }
    if input.launched > roots {
        a.problems.push(format!("{} launched instance(s) missing from the schema", input.launched - roots));
    }
    if input.launched > 0 && roots > input.launched {
        a.notes.push(format!(
            "{} instance(s) more than launched (a start call that failed after enqueueing)",
            roots - input.launched
        ));
    }
    if let Some(seen) = input.completed
        && seen != roots_completed
    {
        a.problems.push(format!("the schema shows {roots_completed} completed, the agents saw {seen}"));
    }
    unexpected
}

/// What the checker found: the counts, a note for unexpected failures, and
/// one problem line with examples for instances that differ.
fn add_mismatches(a: &mut Audit, checker: Checker<'_>) {
    a.expected_activity_completions = checker.expected_completions;
    a.anomalies = checker.mismatched;
    a.unexpected_failures = checker.unexpected_failures;
    if checker.unexpected_failures > 0 {
        a.notes.push(format!(
            "{} instance(s) failed where their scenario expects completion (the success gate counts them)",
            checker.unexpected_failures
        ));
    }
    a.wrong_output = checker
        .mismatches
        .iter()
        .filter(|m| m.problems.iter().any(|p| p.starts_with("output") || p.starts_with("failed with")))
        .count() as u64;
    if checker.mismatched > 0 {
        let examples: Vec<String> = checker
            .mismatches
            .iter()
            .take(3)
            .map(|m| format!("{} ({}): {}", m.instance, m.scenario, m.problems.join("; ")))
            .collect();
        a.problems.push(format!(
            "{} instance(s) differ from what their scenario expects, e.g. {}",
            checker.mismatched,
            examples.join(" | ")
        ));
    }
    a.mismatches = checker.mismatches;
}

/// Activity executions counted where they ran against the history's
/// completions and failures: fewer is a problem, more are redeliveries.
fn check_activities(a: &mut Audit, rows: &[InstanceRow]) {
    if a.activities_executed == 0 {
        return;
    }
    let failed: u64 = rows.iter().map(|r| r.observed.events.get("ActivityFailed").copied().unwrap_or(0)).sum();
    let accounted = a.activity_completions + failed;
    if a.activities_executed < a.activity_completions {
        a.problems.push(format!(
            "activities executed ({}) are fewer than the history's completions ({})",
            a.activities_executed, a.activity_completions
        ));
    }
    a.redeliveries = a.activities_executed.saturating_sub(accounted);
    if a.redeliveries > 0 {
        a.notes.push(format!(
            "{} activity execution(s) beyond the history's completions and failures (redeliveries)",
            a.redeliveries
        ));
    }
}

/// Walks instance trees against expectations, collecting what differs.
struct Checker<'a> {
    children: &'a HashMap<&'a str, Vec<&'a InstanceRow>>,
    mismatches: Vec<InstanceMismatch>,
    expected_completions: u64,
    mismatched: u64,
    unexpected_failures: u64,
}

impl Checker<'_> {
    /// Check `row` and its descendants; returns (descendants found, expected).
    fn check(&mut self, row: &InstanceRow, expect: &Expect) -> (u64, u64) {
        let mut problems = expect.check(&row.observed);
        if let Some((_, Count::Exactly(n))) = expect.events.iter().find(|(k, _)| *k == "ActivityCompleted") {
            self.expected_completions += n;
        }
        let kids = self.children.get(row.id.as_str()).map_or(&[][..], Vec::as_slice);
        let (mut found, mut wanted) = (kids.len() as u64, 0);
        match &expect.children {
            Some((n, child)) => {
                wanted += n;
                if kids.len() as u64 != *n {
                    problems.push(format!("{} child instance(s) where {n} were expected", kids.len()));
                }
                for k in kids {
                    let (f, w) = self.check(k, child);
                    found += f;
                    wanted += w;
                }
            }
            None if !kids.is_empty() => problems.push(format!("{} unexpected child instance(s)", kids.len())),
            None => {}
        }
        if !problems.is_empty() {
            // A failure where completion was expected is the success gate's
            // to judge; the audit holds the database's own consistency.
            let failed_instead = row.observed.status == "Failed" && matches!(expect.outcome, Outcome::Completed(_));
            if failed_instead {
                self.unexpected_failures += 1;
            } else {
                self.mismatched += 1;
            }
            if self.mismatches.len() < MISMATCHES_KEPT {
                self.mismatches.push(InstanceMismatch {
                    instance: row.id.clone(),
                    scenario: expect.scenario.to_string(),
                    problems,
                });
            }
        }
        (found, wanted)
    }
}

/// Audit a kept schema on its own (`coordinator audit --schema S`), with what
/// its run recorded when it has a record.
pub async fn audit_schema(url: &str, schema: &str) -> Result<AuditOutcome, CoordinatorError> {
    loadgen_common::schema::validate_schema_name(schema).map_err(|e| CoordinatorError::Usage(e.to_string()))?;
    crate::db::preflight(url).await?;
    // Read only: an audit never creates or migrates anything, and reads a
    // schema whichever build of duroxide-pg migrated it.
    let provider = RunDb::connect(url, schema).await?;
    let known: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("{schema}._duroxide_migrations"))
        .fetch_one(provider.pool())
        .await
        .map_err(|e| crate::db::db_err("looking the schema up", e))?;
    if !known {
        provider.pool().close().await;
        return Err(CoordinatorError::Usage(format!(
            "schema {schema} is not a duroxide-pg schema in this database (it has no _duroxide_migrations table)"
        )));
    }
    let input = match record::recorded(&provider).await? {
        Some(r) => {
            let ctx = loadgen_scenarios::Context { run_id: r.run_id.clone(), seed: r.seed, agent: 0, agents: r.agents };
            let built = loadgen_scenarios::build(&r.scenario, &r.options, &ctx)
                .map_err(|e| CoordinatorError::Usage(format!("the run record of {schema}: {e}")))?;
            AuditInput {
                run_id: Some(r.run_id),
                scenario: Some(built.scenario),
                facts: r.facts,
                launched: r.launched,
                completed: r.completed,
                activities_executed: r.activities_executed,
            }
        }
        None => AuditInput::default(),
    };
    let result = audit(&provider, &input).await;
    provider.pool().close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_scenarios::{Context, Observed, Options, build};

    fn row(id: &str, status: &str, output: &str, events: &[(&str, u64)]) -> InstanceRow {
        InstanceRow {
            id: id.into(),
            orchestration: "LoadgenFanout".into(),
            observed: Observed {
                status: status.into(),
                output: Some(output.into()),
                output_len: output.len() as u64,
                output_md5: String::new(),
                executions: 1,
                events: events.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
        }
    }

    fn fanout_input(launched: u64) -> AuditInput {
        let opts = Options::from([("tasks".to_string(), "2".to_string())]);
        let ctx = Context { run_id: "r1".into(), seed: 1, agent: 0, agents: 1 };
        AuditInput {
            run_id: Some("r1".into()),
            scenario: Some(build("fanout", &opts, &ctx).expect("fanout").scenario),
            launched,
            completed: Some(launched),
            activities_executed: 2 * launched + 1,
            ..Default::default()
        }
    }

    fn good(id: &str) -> InstanceRow {
        row(
            id,
            "Completed",
            "fanout:2",
            &[
                ("OrchestrationStarted", 1),
                ("ActivityScheduled", 2),
                ("ActivityCompleted", 2),
                ("OrchestrationCompleted", 1),
            ],
        )
    }

    #[test]
    fn a_clean_run_passes_and_counts_redeliveries() {
        let rows = vec![good("r1-0-0"), good("r1-0-1")];
        let a = judge(&rows, &fanout_input(2));
        assert!(a.passed(), "{:?}", a.problems);
        assert_eq!((a.as_expected, a.expected_activity_completions, a.redeliveries), (2, 4, 1));
        assert_eq!(a.by_scenario["fanout"].as_expected, 2);
    }

    #[test]
    fn each_defect_is_named_with_its_instance() {
        let mut extra_completion = good("r1-0-0");
        extra_completion.observed.events.insert("ActivityCompleted".into(), 3);
        let mut missing_completion = good("r1-0-1");
        missing_completion.observed.events.insert("ActivityCompleted".into(), 1);
        // Totals cancel out (3 + 1 = 2 + 2): only a per-instance audit sees it.
        let a = judge(&[extra_completion, missing_completion], &fanout_input(2));
        assert_eq!(a.anomalies, 2, "{:?}", a.problems);
        assert!(a.mismatches[0].problems.iter().any(|p| p == "3 ActivityCompleted where 2 were expected"), "{a:?}");
        assert!(a.problems[0].contains("r1-0-0 (fanout)"), "{:?}", a.problems);
        let mut two_executions = good("r1-0-0");
        two_executions.observed.executions = 2;
        let a = judge(&[two_executions, row("r1-0-1", "Running", "", &[])], &fanout_input(2));
        assert_eq!(a.anomalies, 2);
        assert_eq!(a.not_terminal, 1);
        let flipped = row("r1-0-0", "Completed", "tampered", &[("ActivityCompleted", 2)]);
        let a = judge(&[flipped], &fanout_input(1));
        assert_eq!(a.wrong_output, 1, "{a:?}");
        let a = judge(&[good("r1-0-0")], &fanout_input(2));
        assert!(a.problems.iter().any(|p| p == "1 launched instance(s) missing from the schema"), "{:?}", a.problems);
        let a = judge(&[good("r1-0-0"), good("zz-stranger")], &fanout_input(1));
        assert!(a.problems.iter().any(|p| p.contains("no scenario started")), "{:?}", a.problems);
    }

    #[test]
    fn ids_parse() {
        assert_eq!(parse_root("ab12-3-17", Some("ab12")), Some(At { agent: 3, seq: 17 }));
        assert_eq!(parse_root("ab12-hot-1", Some("ab12")), None);
        assert_eq!(parent_of("r-0-1::sub::2::sub::5"), Some("r-0-1::sub::2"));
        assert_eq!(parent_of("r-0-1"), None);
    }
}
