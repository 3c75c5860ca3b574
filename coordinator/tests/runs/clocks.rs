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
    let named = |i: u32| format!("agent {i}'s clock was");
    assert!(text.contains(&format!("agent {}'s clock was 15.0 s ahead of the coordinator's;", skewed.index)), "{text}");
    assert!(!text.contains(&named(on_time.index)), "{text}");
    assert!(gate.value.contains(&format!("agent {} ", skewed.index)), "{gate:?}");
    assert!(!gate.value.contains(&format!("agent {} ", on_time.index)), "{gate:?}");
    assert!(text.contains("clocks against the coordinator's: at Hello, largest offset agent"), "{text}");
    // During the run too: every progress message carries the agent's time.
    let during = skewed.clock_during.expect("offsets during the run");
    assert!((during.min_offset_ms - 15_000.0).abs() < 1_000.0, "{during:?}");
    assert!(on_time.clock_during.expect("offsets during the run").largest().abs() < 1_000.0, "{on_time:?}");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(page.contains(&format!("{:+.1} ms", off.offset_ms)), "the HTML agents table shows the offset");
}

/// The clock-skew fault: agent 1's wall clock jumps 20 s ahead mid-run
/// (libfaketime, driven through the agent's control file) and back; the
/// offsets measured during the run show it, the summary names it, and no
/// control file is left.
#[test]
fn a_clock_skew_fault_moves_one_agents_clock_mid_run_and_is_measured() {
    libfaketime();
    let tmp = tempfile::tempdir().expect("tmp");
    let faults = tmp.path().join("skew.toml");
    std::fs::write(
        &faults,
        "[[fault]]\nkind = \"clock-skew\"\nat = \"1s\"\nduration = \"3s\"\nagent = 1\noffset = \"+20s\"\n",
    )
    .expect("faults file");
    let leftovers = || -> usize {
        std::fs::read_dir(std::env::temp_dir())
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("loadgen-clock-")).count())
            .unwrap_or(0)
    };
    let before = leftovers();
    let json = tmp.path().join("r.json");
    let out = coordinator(tmp.path())
        .args(["--local", "2", "--profile", "light", "--duration", "6s", "--faults"])
        .arg(&faults)
        .args(["--json".as_ref(), json.as_os_str()])
        .output()
        .expect("run coordinator");
    assert!(out.status.success(), "{}", show(&out));
    let r = read_report(&json);
    let fault = r.faults.first().expect("the fault in the report");
    assert!(fault.event.error.is_none() && fault.event.detail.contains("wall clock +20.000000 s for 3s"), "{fault:?}");
    let (steady, skewed) = (&r.agents[0], &r.agents[1]);
    assert!(skewed.clock.expect("read at Hello").offset_ms.abs() < 1_000.0, "true at Hello: {skewed:?}");
    let during = skewed.clock_during.expect("offsets during the run");
    assert!((during.max_offset_ms - 20_000.0).abs() < 1_500.0, "20 s ahead mid-run: {during:?}");
    assert!(during.min_offset_ms.abs() < 1_500.0, "and true before and after: {during:?}");
    assert!(steady.clock_during.expect("offsets during the run").largest().abs() < 1_000.0, "{steady:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[warn] agent 1's clock was 20.0 s ahead of the coordinator's during the run"), "{text}");
    assert!(!text.contains("agent 0's clock was"), "{text}");
    assert!(leftovers() <= before, "a control file was left in {}", std::env::temp_dir().display());
}

/// A clock-skew fault on an agent that cannot shift its clock, or with an
/// offset that is not one, is bad input: one line, exit 2, before any load.
#[test]
fn a_clock_skew_the_run_cannot_carry_out_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let write = |name: &str, offset: &str| {
        let f = tmp.path().join(name);
        let text = format!("[[fault]]\nkind = \"clock-skew\"\nat = \"1s\"\nagent = 0\noffset = \"{offset}\"\n");
        std::fs::write(&f, text).expect("faults file");
        f
    };
    let bad_offset = write("soon.toml", "soon");
    let out = coordinator(tmp.path())
        .args(["--local", "1", "--profile", "light", "--duration", "3s", "--faults"])
        .arg(&bad_offset)
        .output()
        .expect("run coordinator");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("offset \"soon\" is not a signed duration such as +15s"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pg = rt.block_on(EmbeddedPostgres::start()).expect("throwaway postgres for the test");
    let plain = support::spawn_agent(pg.url(), &[]);
    let skew = write("skew.toml", "+5s");
    let out = coordinator(tmp.path())
        .args(["--agents", &plain.address, "--database-url", pg.url(), "--profile", "light", "--duration", "3s"])
        .arg("--faults")
        .arg(&skew)
        .output()
        .expect("run coordinator");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot shift its clock: start it with --clock-control"), "{err}");
    drop(plain);
    drop(pg);
}
