//! Gates, evaluated once on the merged result.
//!
//! Must-pass gates set the exit code: success (every instance ended as its
//! scenario expects: completed, or failed by design; at most `max_failed`
//! otherwise), no infrastructure, configuration or poison failures, no start
//! errors, no dropped open-loop starts, throughput at least the profile's
//! minimum, p99 at most `p99_ms` when set, and the per-instance audit.
//! Should-gates (memory growth here, regressions in [`crate::track`]) are
//! warnings unless the user asks for them to fail the run.

use loadgen_common::units::format_latency_us as fmt_ms;

use crate::model::{AgentReport, Audit, Gate, LostAgent, Section};
use crate::plan::ProfilePlan;

/// The gate `--abort-on-fail` lost while the run went (always failed).
pub fn abort_gate(a: &crate::model::Aborted) -> Gate {
    Gate {
        name: "abort on fail".into(),
        limit: "no gate lost while the run went".into(),
        value: format!("the {} gate was lost at {:.1}s ({}); every agent was stopped", a.gate, a.at_s, a.detail),
        passed: false,
    }
}

/// Evaluate every must-pass gate.
pub fn evaluate(profile: &ProfilePlan, merged: &Section, audit: &Audit) -> Vec<Gate> {
    evaluate_workload(profile, merged, audit, true)
}

/// Every must-pass gate; `instances` is false for a workload whose load is
/// messages to a few long-lived instances (its throughput is not
/// orchestrations per second, so that gate does not apply).
pub fn evaluate_workload(profile: &ProfilePlan, merged: &Section, audit: &Audit, instances: bool) -> Vec<Gate> {
    let c = &merged.counts;
    let gate =
        |name: &str, limit: String, value: String, passed: bool| Gate { name: name.into(), limit, value, passed };
    let not_as_expected = c.not_as_expected();
    let expected =
        if c.expected_failures > 0 { format!(", {} failed by design", c.expected_failures) } else { String::new() };
    let success = match profile.gates.max_failed {
        None | Some(0) => gate(
            "success rate",
            "100% of launched ended as their scenario expects".into(),
            format!("{:.2}% ({} of {}{expected})", c.success_pct(), c.as_expected(), c.launched),
            c.launched > 0 && not_as_expected == 0,
        ),
        Some(max) => gate(
            "failed or unfinished",
            format!("<= {max}"),
            format!(
                "{not_as_expected} ({} failed unexpectedly, {} unfinished, {} completed where a failure was designed)",
                c.unexpected_failures(),
                c.unfinished,
                c.unexpected_outcomes
            ),
            c.launched > 0 && not_as_expected <= max,
        ),
    };
    let mut gates = vec![
        success,
        gate("infrastructure failures", "0".into(), c.failed_infrastructure.to_string(), c.failed_infrastructure == 0),
        gate("configuration failures", "0".into(), c.failed_configuration.to_string(), c.failed_configuration == 0),
        // duroxide's own stress module counts poison as infrastructure: a
        // message that kept failing is never acceptable.
        gate("poison messages", "0".into(), c.failed_poison.to_string(), c.failed_poison == 0),
        gate("start errors", "0".into(), c.start_errors.to_string(), c.start_errors == 0),
        if instances {
            gate(
                "throughput",
                format!(">= {:.2} orch/s", profile.gates.min_orch_per_sec),
                format!("{:.2} orch/s", merged.orch_per_sec),
                merged.orch_per_sec >= profile.gates.min_orch_per_sec,
            )
        } else {
            gate(
                "throughput",
                "not applicable".into(),
                "the workload is messages to long-lived instances, not orchestrations per second".into(),
                true,
            )
        },
    ];
    if let Some(cap) = profile.open_loop_cap() {
        // Open loop: a start that was never made is load the system did not
        // get, hidden from every latency figure.
        gates.push(gate(
            "dropped starts",
            format!("0 (in-flight cap {cap})"),
            format!("{} dropped, {} late", c.dropped, c.late),
            c.dropped == 0,
        ));
    }
    if let Some(limit) = profile.gates.p99_ms {
        // Open loop: from the intended start (what users would see).
        let p99 = merged.headline_latency().p99_us;
        gates.push(if instances {
            gate("p99 latency", format!("<= {limit}ms"), fmt_ms(p99), (p99 as f64) / 1000.0 <= limit)
        } else {
            // Long-lived instances give no latency samples; their event
            // latency is in the scenario's own line.
            gate("p99 latency", "not applicable".into(), "no orchestration latency in this workload".into(), true)
        });
    }
    let audit_value = if audit.passed() {
        let mut v = format!(
            "{} instances, {} as their scenario expects; {} activity completions; {} redeliveries",
            audit.instances, audit.as_expected, audit.activity_completions, audit.redeliveries
        );
        for note in &audit.notes {
            v.push_str("; ");
            v.push_str(note);
        }
        v
    } else {
        audit.problems.join("; ")
    };
    gates.push(gate(
        "correctness audit",
        "every instance as its scenario expects (status, output, executions, history), nothing queued".into(),
        audit_value,
        audit.passed(),
    ));
    gates
}

/// The gate a degraded run fails: every agent must finish.
pub fn agents_gate(agents: usize, lost: &[LostAgent]) -> Gate {
    let names: Vec<String> =
        lost.iter().map(|l| format!("{} ({}) at {:.1}s: {}", l.index, l.address, l.at_s, l.reason)).collect();
    Gate {
        name: "agents".into(),
        limit: format!("all {agents} finish"),
        value: format!("{} lost: {}", lost.len(), names.join("; ")),
        // An agent the fault schedule killed or froze is lost as planned.
        passed: lost.iter().all(|l| l.planned),
    }
}

/// Every scheduled fault was applied (and undone): a fault that could not be
/// applied proves nothing, and one that could not be undone leaves the run
/// on a broken system.
pub fn faults_gate(faults: &[crate::model::FaultReport]) -> Gate {
    let failed: Vec<String> = faults
        .iter()
        .filter_map(|f| f.event.error.as_ref().map(|e| format!("{} at {:.1}s: {e}", f.event.kind, f.event.at_s)))
        .collect();
    Gate {
        name: "faults".into(),
        limit: "every scheduled fault applied".into(),
        value: if failed.is_empty() {
            format!("{} applied", faults.len())
        } else {
            format!("{} of {} failed: {}", failed.len(), faults.len(), failed.join("; "))
        },
        passed: failed.is_empty(),
    }
}

/// The clock gate, when the profile sets `max_clock_offset`: every agent's
/// clock read within it of the coordinator's, at its Hello and during the
/// run (an agent that sent no time cannot be vouched for, and fails it).
pub fn clock_gate(profile: &ProfilePlan, agents: &[AgentReport]) -> Option<Gate> {
    let limit = profile.gates.max_clock_offset?;
    let limit_ms = limit.as_secs_f64() * 1000.0;
    let off: Vec<String> = agents
        .iter()
        .filter_map(|a| {
            let margin = a.clock.map_or(0.0, |c| c.within_ms);
            match a.largest_clock_offset_ms() {
                Some(o) if o.abs() + margin <= limit_ms => None,
                Some(o) => Some(format!("agent {} ({}) {o:+.1} ms", a.index, a.address)),
                None => Some(format!("agent {} ({}) sent no time", a.index, a.address)),
            }
        })
        .collect();
    let largest = agents.iter().filter_map(AgentReport::largest_clock_offset_ms).map(f64::abs).fold(0.0, f64::max);
    Some(Gate {
        name: "clocks".into(),
        limit: format!("every agent within {} of the coordinator's", loadgen_common::units::format_duration(limit)),
        value: if off.is_empty() { format!("largest offset {largest:.1} ms") } else { off.join("; ") },
        passed: off.is_empty(),
    })
}

/// Warnings for agents whose memory grew faster than the profile allows.
pub fn memory_warnings(profile: &ProfilePlan, agents: &[AgentReport]) -> Vec<String> {
    let Some(limit) = profile.gates.rss_growth_mb_per_min else { return Vec::new() };
    agents
        .iter()
        .filter_map(|a| {
            let g = a.memory.growth_mb_per_min?;
            (g > limit).then(|| {
                format!(
                    "memory growth: agent {} ({}) grew {g:.2} MB/min (limit {limit} MB/min; {:.1} -> {:.1} MB)",
                    a.index, a.address, a.memory.start_mb, a.memory.end_mb
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counts, LatencySummary, MemorySummary};
    use crate::plan::profile::find_profile;

    fn section(launched: u64, completed: u64, infra: u64, rate: f64) -> Section {
        Section {
            counts: Counts { launched, completed, failed_infrastructure: infra, ..Default::default() },
            orch_per_sec: rate,
            e2e_latency: LatencySummary { p99_us: 400_000, ..Default::default() },
            ..Default::default()
        }
    }

    fn db(n: u64) -> Audit {
        Audit { instances: n, terminal_once: n, completed: n, as_expected: n, ..Default::default() }
    }

    fn broken(problem: &str) -> Audit {
        Audit { problems: vec![problem.to_string()], ..Default::default() }
    }

    /// The profile resolved, as a run hands it to the gates.
    fn plan(p: &crate::plan::Profile) -> ProfilePlan {
        ProfilePlan::resolve(p.clone()).expect("resolves")
    }

    fn failed(p: &crate::plan::Profile, s: &Section, d: &Audit) -> Vec<String> {
        evaluate(&plan(p), s, d).into_iter().filter(|g| !g.passed).map(|g| g.name).collect()
    }

    #[test]
    fn a_clean_run_passes_every_gate() {
        let p = find_profile("light").expect("light");
        assert!(evaluate(&plan(&p), &section(10, 10, 0, 5.0), &db(10)).iter().all(|g| g.passed));
    }

    #[test]
    fn each_gate_fails_on_its_own_condition() {
        let p = find_profile("high-concurrency").expect("profile"); // min 2.0 orch/s
        let one_failed =
            Audit { instances: 10, terminal_once: 10, completed: 9, failed: 1, as_expected: 9, ..Default::default() };
        assert_eq!(failed(&p, &section(10, 9, 1, 5.0), &one_failed), ["success rate", "infrastructure failures"]);
        assert_eq!(failed(&p, &section(10, 10, 0, 1.5), &db(10)), ["throughput"]);
        assert_eq!(failed(&p, &section(10, 10, 0, 5.0), &broken("1 instance(s) not terminal")), ["correctness audit"]);
        assert_eq!(failed(&p, &section(0, 0, 0, 5.0), &db(0)), ["success rate"]);
    }

    #[test]
    fn profile_thresholds_add_and_relax_gates() {
        let mut p = find_profile("light").expect("light");
        p.p99_ms = Some(300.0);
        assert_eq!(failed(&p, &section(10, 10, 0, 5.0), &db(10)), ["p99 latency"]);
        p.p99_ms = Some(500.0);
        assert!(failed(&p, &section(10, 10, 0, 5.0), &db(10)).is_empty());
        // Two application failures allowed: the success gate becomes a count.
        p.max_failed = Some(2);
        let mut s = section(10, 8, 0, 5.0);
        s.counts.failed_application = 2;
        let d =
            Audit { instances: 10, terminal_once: 10, completed: 8, failed: 2, as_expected: 8, ..Default::default() };
        assert!(failed(&p, &s, &d).is_empty(), "{:?}", evaluate(&plan(&p), &s, &d));
        let gate = evaluate(&plan(&p), &s, &d).into_iter().next().expect("first gate");
        assert_eq!((gate.name.as_str(), gate.limit.as_str()), ("failed or unfinished", "<= 2"));
        p.max_failed = Some(1);
        assert_eq!(failed(&p, &s, &d), ["failed or unfinished"]);
    }

    #[test]
    fn the_clock_gate_fails_an_agent_off_by_more_than_the_limit_or_unread() {
        use crate::model::ClockReading;
        let mut p = find_profile("light").expect("light");
        let agent = |index: u32, clock: Option<f64>| AgentReport {
            index,
            clock: clock.map(|offset_ms| ClockReading { offset_ms, within_ms: 0.5 }),
            ..Default::default()
        };
        let agents = [agent(0, Some(3.0)), agent(1, Some(-15_000.0))];
        assert!(clock_gate(&plan(&p), &agents).is_none(), "no gate unless asked for");
        p.max_clock_offset = Some(std::time::Duration::from_secs(1));
        let g = clock_gate(&plan(&p), &agents).expect("gate");
        assert!(!g.passed && g.value.contains("agent 1") && !g.value.contains("agent 0"), "{g:?}");
        assert!(clock_gate(&plan(&p), &agents[..1]).expect("gate").passed);
        assert!(!clock_gate(&plan(&p), &[agent(2, None)]).expect("gate").passed, "an unread clock is not vouched for");
    }

    #[test]
    fn memory_growth_above_the_limit_warns() {
        let mut p = find_profile("soak").expect("soak");
        p.rss_growth_mb_per_min = Some(5.0);
        let agent = |g: f64| AgentReport {
            memory: MemorySummary { growth_mb_per_min: Some(g), ..Default::default() },
            ..Default::default()
        };
        assert!(memory_warnings(&plan(&p), &[agent(1.0)]).is_empty());
        let w = memory_warnings(&plan(&p), &[agent(1.0), agent(7.5)]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("7.50 MB/min"), "{w:?}");
    }
}
