//! `coordinator sweep` on this machine: open-loop steps below and above what
//! one agent at 2:2 can complete; the sweep must find the knee below the
//! overloaded step, stop there, and explain itself.

use crate::support;

use crate::support::{coordinator, show};

#[test]
fn a_sweep_finds_the_knee_and_stops_when_the_slo_breaks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("sweep.json");
    let html = tmp.path().join("sweep.html");
    let out = coordinator(tmp.path())
        .args(["sweep", "--local", "1", "--profile", "light", "--slo-p99", "1s"])
        .args(["--steps", "5/s,15/s,90/s,120/s", "--step-duration", "5s", "--live", "line"])
        .args(["--json", &json.display().to_string(), "--report", &html.display().to_string()])
        .output()
        .expect("coordinator sweep");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("<- knee") && text.contains("Recommendation:"), "{text}");

    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parses");
    let sweep: loadgen_coordinator::model::SweepReport = serde_json::from_value(doc["sweep"].clone()).expect("sweep");
    let runs = doc["runs"].as_array().expect("runs");
    // 90/s is about three times what one agent at 2:2 completes here: the
    // backlog breaks a 1 s p99 and the sweep stops before 120/s.
    assert_eq!(sweep.steps.len(), 3, "{:?}", sweep.steps);
    assert_eq!(runs.len(), 3);
    assert!(sweep.steps[0].within_slo && sweep.steps[1].within_slo, "{:?}", sweep.steps);
    assert!(!sweep.steps[2].within_slo && sweep.steps[2].p99_ms > 1000.0, "{:?}", sweep.steps[2]);
    // Broken, or broken ten times over (a busy machine drains the backlog slower).
    let r = &sweep.stop_reason;
    assert!(
        r.contains("SLO broke at step 3") || r.contains("stopped early at step 3: the database degraded badly (p99"),
        "{r}"
    );
    assert_eq!(sweep.knee, Some(1));
    assert_eq!(sweep.max_sustainable_orch_per_sec, Some(sweep.steps[1].achieved_orch_per_sec));
    // Below capacity the schedule is met.
    for (s, offered) in sweep.steps.iter().zip([5.0, 15.0]) {
        assert!((s.achieved_orch_per_sec - offered).abs() < offered * 0.25, "{s:?}");
        assert!(s.littles_law_in_flight > 0.0 && s.mean_in_flight > 0.0, "{s:?}");
    }
    // Overloaded, it completes less than offered.
    assert!(sweep.steps[2].achieved_orch_per_sec < 80.0, "{:?}", sweep.steps[2]);
    assert!(sweep.recommendation.iter().any(|l| l.contains("Little's law")), "{:?}", sweep.recommendation);
    assert!(sweep.recommendation.iter().any(|l| l.starts_with("Sustainable at p99")), "{:?}", sweep.recommendation);
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains("data-chart=\"sweep-curve\""), "the sweep page has its curve");
    support::assert_nothing_left(tmp.path(), &["sweep.json", "sweep.html"]);
}

#[test]
fn sweep_input_is_checked() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (args, needle) in [
        (&["sweep", "--local", "1"][..], "--slo-p99"),
        (&["sweep", "--local", "1", "--slo-p99", "1s", "--steps", "20/s,10/s"], "must increase"),
        (&["sweep", "--local", "1", "--slo-p99", "1s", "--mode", "budget", "--steps", "5,x"], "budget step"),
        (&["sweep", "--local", "1", "--slo-p99", "1s", "--factor", "1"], "--factor"),
        (&["sweep", "--local", "1", "--slo-p99", "1s", "--json", "/proc/no-such-dir/x.json"], "cannot write in /proc"),
        (&["sweep", "--local", "1", "--slo-p99", "1s", "--duration", "3s"], "--step-duration"),
        (&["sweep", "--local", "1", "--slo-p99", "1s", "--rate", "10/s"], "sets the rate per step"),
        (
            &["sweep", "--local", "1", "--slo-p99", "1s", "--mode", "budget", "--arrival", "poisson"],
            "--arrival needs --rate",
        ),
        (&["sweep", "--local", "3", "--slo-p99", "1s", "--profile", "chaos"], "without faults"),
        (&["sweep", "--local", "1", "--slo-p99", "1s", "--faults", "/no/such/faults.toml"], "without faults"),
    ] {
        let out = coordinator(tmp.path()).args(args).output().expect("coordinator");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    support::assert_nothing_left(tmp.path(), &[]);
}
