//! A real multi-host run: scripts/multihost-netns.sh puts Postgres, the
//! coordinator and three agents in network namespaces of their own, the
//! coordinator finds the agents through one name resolving to all of them,
//! and one agent's link is cut mid-run. Needs root; without it the test
//! fails saying so, unless LOADGEN_SKIP_ROOT_TESTS=1 (never set by CI).

use crate::support;

use std::process::Command;

#[test]
fn multi_host_run_over_network_namespaces_survives_a_cut_link() {
    if !support::needs_root("multi_host", "create network namespaces") {
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("multihost.json");
    let coordinator = env!("CARGO_BIN_EXE_coordinator");
    let agent = std::path::Path::new(coordinator).with_file_name("agent");
    let out = Command::new("scripts/multihost-netns.sh")
        .args(["--agents", "3", "--profile", "light", "--duration", "20s", "--cut-after", "5"])
        .args(["--json", &json.display().to_string()])
        .env("COORDINATOR_BIN", coordinator)
        .env("AGENT_BIN", &agent)
        .current_dir(root)
        .output()
        .expect("run scripts/multihost-netns.sh");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let all = support::show(&out);
    assert_eq!(out.status.code(), Some(4), "a run with a cut agent ends degraded:\n{all}");

    // Discovery: the coordinator started first and waited for the agents
    // behind the one name.
    assert!(err.contains("waiting for agents"), "{all}");
    assert!(err.contains("3 agent(s) answered after"), "{all}");

    let r = support::read_report(&json);
    assert_eq!(r.agents.len(), 3);
    let subnet = err
        .split("subnet ")
        .nth(1)
        .and_then(|s| s.split(".0/24").next())
        .expect("the script names its subnet")
        .to_string();
    let addresses: Vec<&str> = r.agents.iter().map(|a| a.address.as_str()).collect();
    let expected: Vec<String> = (11..=13).map(|h| format!("{subnet}.{h}:7000")).collect();
    assert_eq!(addresses, expected, "one agent per namespace address, found through one name");
    // The cut agent (the second) is the one lost, and its work is accounted for.
    let lost: Vec<_> = r.agents.iter().filter(|a| a.lost).map(|a| a.address.as_str()).collect();
    assert_eq!(lost, [expected[1].as_str()], "{:?}", r.lost_agents);
    assert_eq!(r.lost_agents.len(), 1);
    let l = &r.lost_agents[0];
    assert!(l.instances_in_db >= l.last_reported.launched && l.instances_in_db > 0, "{l:?}");
    assert_eq!((l.still_running, l.failed_in_db), (0, 0), "{l:?}");
    let m = &r.merged.counts;
    assert_eq!(m.completed, m.launched, "{m:?}");
    assert!(r.audit.passed(), "{:?}", r.audit.problems);
    // The healthy agents kept loading after the cut.
    assert!(r.agents.iter().filter(|a| !a.lost).all(|a| a.section.counts.completed > l.last_reported.launched / 2));

    // Nothing is left: namespaces, hosts files, the work directory.
    let tag = err
        .split("namespaces ")
        .nth(1)
        .and_then(|s| s.split("-*").next())
        .expect("the script names its namespaces")
        .to_string();
    let work = err.split("work dir ").nth(1).and_then(|s| s.lines().next()).expect("work dir").trim().to_string();
    let netns = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(&format!("{tag}-")), "namespaces left: {netns}");
    assert!(!std::path::Path::new(&format!("/etc/netns/{tag}-coord")).exists());
    assert!(!std::path::Path::new(&work).exists(), "{work} left behind");
    assert!(
        support::processes_mentioning(&work).is_empty(),
        "processes left: {:?}",
        support::processes_mentioning(&work)
    );
}
