//! Must-pass gates, evaluated once on the merged result.

use loadgen_common::config::Profile;
use loadgen_common::result::{DbCheck, Gate, Section};

/// Evaluate every must-pass gate.
pub fn evaluate(profile: &Profile, merged: &Section, db: &DbCheck) -> Vec<Gate> {
    let c = &merged.counts;
    let gate =
        |name: &str, limit: String, value: String, passed: bool| Gate { name: name.into(), limit, value, passed };
    vec![
        gate(
            "success rate",
            "100% of launched completed".into(),
            format!("{:.2}% ({} of {})", c.success_pct(), c.completed, c.launched),
            c.launched > 0 && c.completed == c.launched,
        ),
        gate("infrastructure failures", "0".into(), c.failed_infrastructure.to_string(), c.failed_infrastructure == 0),
        gate("configuration failures", "0".into(), c.failed_configuration.to_string(), c.failed_configuration == 0),
        gate("start errors", "0".into(), c.start_errors.to_string(), c.start_errors == 0),
        gate(
            "throughput",
            format!(">= {:.2} orch/s", profile.min_orch_per_sec),
            format!("{:.2} orch/s", merged.orch_per_sec),
            merged.orch_per_sec >= profile.min_orch_per_sec,
        ),
        gate(
            "database agrees",
            "every launched instance completed exactly once".into(),
            format!(
                "{} instances, {} completed once, {} anomalies, {} running, {} failed",
                db.instances, db.completed_once, db.anomalies, db.running, db.failed
            ),
            db.instances == c.launched && db.completed_once == c.completed && db.anomalies == 0 && db.running == 0,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen_common::config::find_profile;
    use loadgen_common::result::Counts;

    fn section(launched: u64, completed: u64, infra: u64, rate: f64) -> Section {
        Section {
            counts: Counts { launched, completed, failed_infrastructure: infra, ..Default::default() },
            orch_per_sec: rate,
            ..Default::default()
        }
    }

    fn db(n: u64) -> DbCheck {
        DbCheck { instances: n, completed_once: n, ..Default::default() }
    }

    #[test]
    fn a_clean_run_passes_every_gate() {
        let p = find_profile("light").expect("light");
        assert!(evaluate(&p, &section(10, 10, 0, 5.0), &db(10)).iter().all(|g| g.passed));
    }

    #[test]
    fn each_gate_fails_on_its_own_condition() {
        let p = find_profile("high-concurrency").expect("profile"); // min 2.0 orch/s
        let failed = |s: &Section, d: &DbCheck| -> Vec<String> {
            evaluate(&p, s, d).into_iter().filter(|g| !g.passed).map(|g| g.name).collect()
        };
        assert_eq!(
            failed(
                &section(10, 9, 1, 5.0),
                &DbCheck { instances: 10, completed_once: 9, failed: 1, ..Default::default() }
            ),
            ["success rate", "infrastructure failures"]
        );
        assert_eq!(failed(&section(10, 10, 0, 1.5), &db(10)), ["throughput"]);
        assert_eq!(failed(&section(10, 10, 0, 5.0), &db(11)), ["database agrees"]);
        assert_eq!(failed(&section(0, 0, 0, 5.0), &db(0)), ["success rate"]);
    }
}
