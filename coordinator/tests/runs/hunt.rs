//! `coordinator hunt`: the same run repeated until its audit breaks an
//! invariant. A duplicate delivery made on purpose (the agents' test knob
//! raises every event twice with the same data) is found in every try and
//! named with the command that replays the try's workload; without it no try
//! breaks and the hunt exits 0; bad input is one line and exit 2.

use crate::support::{coordinator, read_report, show};

const KNOB: &str = "LOADGEN_TEST_RAISE_TWICE";

fn hunt(dir: &std::path::Path, extra: &[&str], knob: bool) -> std::process::Output {
    let mut cmd = coordinator(dir);
    cmd.args(["hunt", "--tries", "2", "--local", "1", "--scenario", "events", "--duration", "2s"]).args(extra);
    if knob {
        cmd.env(KNOB, "1");
    } else {
        cmd.env_remove(KNOB);
    }
    cmd.output().expect("run coordinator hunt")
}

#[test]
fn a_duplicate_delivery_is_found_in_every_try_and_replayable() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("found.json");
    let json_arg = json.display().to_string();
    let out = hunt(tmp.path(), &["--whole-budget", "--json", &json_arg], true);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Hunt: 2 tries done (2 tries in all)."), "{text}");
    assert!(text.contains("Found in 2 of 2 run(s); first in try 1."), "{text}");
    // The run shown is the first that broke, with the duplicate named.
    let r = read_report(&json);
    assert!(r.audit.processed_twice > 0 && !r.audit.duplicates.is_empty(), "{:?}", r.audit);
    let dup = &r.audit.duplicates[0];
    assert!(dup.instance.starts_with(&r.run_id) && dup.kind.starts_with("ExternalEvent"), "{dup:?}");
    assert!(text.contains(&format!("try 1 (run {}, seed {}", r.run_id, r.workload.seed)), "{text}");
    let replay =
        format!("  coordinator --local 1 --scenario events --duration 2s --json {json_arg} --seed {}", r.workload.seed);
    assert!(text.lines().any(|l| l == replay), "{replay:?} in {text}");
}

#[test]
fn a_hunt_that_finds_nothing_exits_0_and_bad_input_exits_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = hunt(tmp.path(), &[], false);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Not found in 2 run(s): every audit passed."), "{text}");
    assert_eq!(text.matches(": audit passed").count(), 2, "{text}");
    for (bad, said) in [
        (&["--tries", "0"][..], "--tries must be at least 1"),
        (&["--budget", "0s"][..], "--budget must be positive"),
        (&["--suite", "1:1,2:2"][..], "hunt repeats one run"),
    ] {
        let mut cmd = coordinator(tmp.path());
        let out = cmd.args(["hunt", "--local", "1"]).args(bad).output().expect("run coordinator hunt");
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said) && err.trim().lines().count() == 1, "{bad:?}: {err}");
    }
}
