//! Load stages: a plan that changes over time is reproduced second by
//! second (open loop: starts per second; closed loop: orchestrations in
//! flight), reported per stage against what was offered, and bad plans are
//! refused with one line before anything starts.

use crate::support;

use crate::support::{coordinator, read_report, run_ok, show};

#[test]
fn an_open_loop_spike_is_reproduced_second_by_second() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("spike.json");
    let plan = "2s:20/s,0s:60/s,3s:60/s,0s:20/s,2s:20/s";
    run_ok(
        tmp.path(),
        &["--local", "2", "--profile", "light", "--stages", plan, "--json", &json.display().to_string()],
    );
    let r = read_report(&json);
    assert!(r.passed && r.audit.passed(), "{:?}", r.gates);
    assert_eq!(r.profile.duration, std::time::Duration::from_secs(7), "explicit stages set the duration");
    // 20 starts in the ramp, 180 in the spike, 40 after it.
    assert_eq!(r.merged.counts.launched, 240);
    // Every whole second started what the plan offered in it (the
    // schedule is exact; a start may slip into the next second, and on a
    // busy machine the starts counted late, which this second or the next
    // issued past their time, move between them).
    let series = &r.timeline.merged;
    for (i, p) in series.iter().enumerate().filter(|(_, p)| p.t_s < 6.5) {
        let offered = p.offered.expect("offered on the merged series");
        let slipped = (p.late + series.get(i + 1).map_or(0, |n| n.late)) as f64;
        let slack = 2.0 + offered * 0.1 + slipped + 1e-9;
        assert!((p.launched as f64 - offered).abs() <= slack, "second ending {:.2}s: {p:?}", p.t_s);
    }
    let stages = r.stages.expect("a stage table");
    assert!(stages.open && stages.rows.len() == 3, "{stages:?}");
    let spike = &stages.rows[1];
    assert_eq!((spike.from_s, spike.to_s), (2.0, 5.0));
    // Offered over the seconds measured, which end a few ms past the whole second.
    assert!((spike.offered - 60.0).abs() < 1.0, "{spike:?}");
    assert!((spike.launched_per_sec - 60.0).abs() <= 6.0, "{spike:?}");
    assert!((stages.rows[2].launched_per_sec - 20.0).abs() <= 4.0, "{:?}", stages.rows[2]);
}

#[test]
fn closed_loop_stages_change_what_is_kept_in_flight() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("closed.json");
    run_ok(
        tmp.path(),
        &["--local", "2", "--profile", "light", "--stages", "2,3s:2,0s:8,3s:8", "--json", &json.display().to_string()],
    );
    let r = read_report(&json);
    assert!(r.passed && r.audit.passed(), "{:?}", r.gates);
    assert_eq!(r.profile.in_flight(), 8, "the budget is the plan's peak");
    let stages = r.stages.expect("a stage table");
    assert!(!stages.open && stages.rows.len() == 2, "{stages:?}");
    let (low, high) = (&stages.rows[0], &stages.rows[1]);
    assert!(high.completed_per_sec > low.completed_per_sec * 1.5, "{low:?} vs {high:?}");
    // In flight is a snapshot at each second's end: away from the jump at
    // 3 s (a second's end drifts past it on a busy machine), the target holds.
    let in_flight = |from: f64, to: f64| -> Vec<u64> {
        r.timeline.merged.iter().filter(|p| p.t_s > from && p.t_s < to).map(|p| p.in_flight).collect()
    };
    let before = in_flight(0.5, 2.9);
    assert!(!before.is_empty() && before.iter().all(|n| *n <= 2), "{before:?}");
    let after = in_flight(4.5, 6.0);
    assert!(!after.is_empty() && after.iter().all(|n| *n >= 5), "{after:?}");
}

#[test]
fn bad_stage_plans_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cases: [(&[&str], &str); 10] = [
        (&["--stages", "30s:ten/s"], "is not a rate such as 10/s"),
        (&["--stages", "10s:10/s,10s:5"], "no /s in a plan of rates"),
        (&["--stages", "spike:50/s..5/s"], "the peak must be above the base"),
        (&["--stages", "ebb-and-flow:50..5@10s"], "HIGH must be above LOW"),
        (&["--stages", "-5s:10/s"], "must not be negative"),
        (&["--runtimes-per-agent", "65"], "must be 1 to 64"),
        (&["--stages", "0s:5/s"], "more than zero"),
        (&["--stages", "wobble:5/s"], "unknown load shape"),
        (&["--stages", "2s:5/s", "--duration", "5s"], "--duration and explicit --stages exclude each other"),
        (&["--stages", "2s:5/s", "--rate", "5/s"], "cannot be used with"),
    ];
    for (args, needle) in cases {
        let out = coordinator(tmp.path()).args(["--local", "1"]).args(args).output().expect("run coordinator");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {}", show(&out));
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {}", show(&out));
    }
    support::assert_nothing_left(tmp.path(), &[]);
}
