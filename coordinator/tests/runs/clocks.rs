//! Clock truth: an agent whose wall clock is off (libfaketime, 15 s ahead)
//! is measured at its Hello, and the skew is named in the summary, the JSON
//! and the HTML report, and fails the clock gate; an agent on the right time
//! is not named.

use std::path::PathBuf;

use loadgen_coordinator::db::embedded::EmbeddedPostgres;

use crate::support::{self, coordinator, read_report, show};

/// Debian's libfaketime (scripts/test-deps.sh installs it); the test fails
/// saying so when it is missing.
fn libfaketime() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("libfaketime is not installed: run scripts/test-deps.sh (Debian package libfaketime)")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_clock_is_off_is_measured_and_named() {
    let lib = libfaketime();
    let pg = EmbeddedPostgres::start().await.expect("throwaway postgres for the test");
    let tmp = tempfile::tempdir().expect("tmp");
    let right = support::spawn_agent(pg.url(), &[]);
    let lib = lib.display().to_string();
    let ahead = support::spawn_agent_with(
        "127.0.0.1:0",
        pg.url(),
        &[],
        None,
        &[("LD_PRELOAD", lib.as_str()), ("FAKETIME", "+15"), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")],
    );
    let (json, html) = (tmp.path().join("r.json"), tmp.path().join("r.html"));
    let agents = format!("{},{}", right.address, ahead.address);
    let out = coordinator(tmp.path())
        .args(["--agents", &agents, "--database-url", pg.url(), "--profile", "light", "--duration", "2s"])
        .args(["--max-clock-offset", "5s"])
        .args(["--json".as_ref(), json.as_os_str(), "--report".as_ref(), html.as_os_str()])
        .output()
        .expect("run coordinator");
    // The clock gate fails the run (leases compare the runtimes' clocks, so
    // the skewed agent may fail work too); it must still finish and say what
    // it measured.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = read_report(&json);
    let gate = r.gates.iter().find(|g| g.name == "clocks").expect("the clocks gate");
    assert!(!gate.passed && gate.limit == "every agent within 5s of the coordinator's", "{gate:?}");
    let agent = |address: &str| r.agents.iter().find(|a| a.address == address).expect("the agent in the report");
    let (on_time, skewed) = (agent(&right.address), agent(&ahead.address));
    let (ok, off) = (on_time.clock.expect("a clock reading"), skewed.clock.expect("a clock reading"));
    assert!(ok.offset_ms.abs() < 500.0, "{ok:?}");
    assert!((off.offset_ms - 15_000.0).abs() < 1_000.0 && off.within_ms < 1_000.0, "{off:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let named = |i: u32| format!("agent {i}'s clock is");
    assert!(text.contains(&format!("agent {}'s clock is 15.0 s ahead of the coordinator's", skewed.index)), "{text}");
    assert!(!text.contains(&named(on_time.index)), "{text}");
    assert!(gate.value.contains(&format!("agent {} ", skewed.index)), "{gate:?}");
    assert!(!gate.value.contains(&format!("agent {} ", on_time.index)), "{gate:?}");
    assert!(text.contains("clocks against the coordinator's: largest offset agent"), "{text}");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains(&format!("{:+.1} ms", off.offset_ms)), "the HTML agents table shows the offset");
}
